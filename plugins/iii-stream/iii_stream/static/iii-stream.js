/*
 * iii-stream.js: a small browser client for the iii stream WebSocket (port 3112).
 * No framework, no build step. Served by the stream module at /iii-stream.js.
 *
 *   const client = new IIIStream("ws://127.0.0.1:3112/");
 *   const sub = client.subscribe({ streamName: "todos", groupId: "inbox" }, (env) => {
 *     // env = { type: "stream", timestamp, streamName, groupId, id, event: { type, data } }
 *   });
 *   sub.unsubscribe();
 *
 *   // A live list: a Map item id -> value, kept in step with the group.
 *   client.liveList("todos", "inbox", (items) => render([...items.values()]));
 *
 * The client reconnects with exponential backoff (0.5 s to 10 s) and joins every subscription
 * again; each join brings a fresh "sync", so the state is whole again after a reconnect.
 */
(function (root) {
  "use strict";

  let counter = 0;
  function newId() {
    counter += 1;
    return "sub-" + Date.now().toString(36) + "-" + counter + "-" + Math.random().toString(36).slice(2, 8);
  }

  class IIIStream {
    constructor(url, options) {
      this.url = url || "ws://127.0.0.1:3112/";
      this.options = Object.assign({ reconnect: true, minDelayMs: 500, maxDelayMs: 10000 }, options || {});
      this.subscriptions = new Map(); // subscriptionId -> {data, callback}
      this.listeners = { open: [], close: [], error: [] };
      this.delay = this.options.minDelayMs;
      this.closed = false;
      this.ws = null;
      this.connect();
    }

    on(kind, callback) {
      (this.listeners[kind] = this.listeners[kind] || []).push(callback);
      return this;
    }

    emit(kind, value) {
      for (const cb of this.listeners[kind] || []) {
        try { cb(value); } catch (err) { console.error("iii-stream listener failed", err); }
      }
    }

    get connected() {
      return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
    }

    connect() {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => {
        this.delay = this.options.minDelayMs;
        for (const [subscriptionId, sub] of this.subscriptions) {
          this.send("join", Object.assign({ subscriptionId }, sub.data));
        }
        this.emit("open");
      };
      ws.onmessage = (msg) => this.dispatch(msg.data);
      ws.onerror = (err) => this.emit("error", err);
      ws.onclose = (ev) => {
        this.emit("close", ev);
        if (this.closed || !this.options.reconnect) return;
        const wait = this.delay;
        this.delay = Math.min(this.delay * 2, this.options.maxDelayMs);
        setTimeout(() => { if (!this.closed) this.connect(); }, wait);
      };
    }

    dispatch(text) {
      let env;
      try { env = JSON.parse(text); } catch (err) { return; }
      if (!env || env.type !== "stream") return;
      // The envelope names no subscription: give it to every one that matches it.
      for (const sub of this.subscriptions.values()) {
        const d = sub.data;
        if (d.streamName !== env.streamName || d.groupId !== env.groupId) continue;
        if (d.id != null && d.id !== env.id) continue;
        try { sub.callback(env); } catch (err) { console.error("iii-stream callback failed", err); }
      }
    }

    send(type, data) {
      if (this.connected) this.ws.send(JSON.stringify({ type, data }));
    }

    /** Join a group (or one item with `id`); `callback(envelope)` gets every event. */
    subscribe(target, callback) {
      const subscriptionId = target.subscriptionId || newId();
      const data = { streamName: target.streamName, groupId: target.groupId };
      if (target.id != null) data.id = target.id;
      this.subscriptions.set(subscriptionId, { data, callback });
      this.send("join", Object.assign({ subscriptionId }, data));
      return {
        subscriptionId,
        unsubscribe: () => {
          if (this.subscriptions.delete(subscriptionId)) {
            this.send("leave", Object.assign({ subscriptionId }, data));
          }
        },
      };
    }

    /**
     * Keep a Map item id -> value for a group. After a sync the ids come from each value's
     * `id` field (the sync carries values only), so store items with an `id` field.
     * `onChange(items, envelope)` runs after every change; `onRefused()` if a join trigger refused.
     */
    liveList(streamName, groupId, onChange, onRefused) {
      const items = new Map();
      return this.subscribe({ streamName, groupId }, (env) => {
        const ev = env.event || {};
        if (ev.type === "sync") {
          items.clear();
          (Array.isArray(ev.data) ? ev.data : []).forEach((value, i) => {
            const key = value && typeof value === "object" && value.id != null ? String(value.id) : String(i);
            items.set(key, value);
          });
        } else if (ev.type === "create" || ev.type === "update") {
          items.set(String(env.id), ev.data);
        } else if (ev.type === "delete") {
          items.delete(String(env.id));
        } else if (ev.type === "unauthorized") {
          if (onRefused) onRefused(env);
          return;
        }
        onChange(items, env);
      });
    }

    close() {
      this.closed = true;
      if (this.ws) this.ws.close();
    }
  }

  root.IIIStream = IIIStream;
  if (typeof module === "object" && module.exports) module.exports = { IIIStream };
})(typeof window !== "undefined" ? window : globalThis);
