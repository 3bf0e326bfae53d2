// Light load clients for the stream fan-out benchmark (Node + ws), driven by stream_bench.py.
//
//   node stream_clients.mjs subscribers <stream_url> <clients> <events> <stream> <group>
//   node stream_clients.mjs producer <engine_url> <events> <rate> <inflight> <stream> <group>
//
// Timestamps are process.hrtime (CLOCK_MONOTONIC, shared by every process on the machine), in
// microseconds, so a set's send time in one process compares with its delivery in another.
// Subscribers do not JSON.parse deliveries: they only read the `"t":` number of the item so the
// clients stay cheap and the module is what gets measured.
import WebSocket from "ws";
import readline from "node:readline";

const [, , role, url, ...rest] = process.argv;
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const T_KEY = Buffer.from('"t":');

function connect(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    ws.once("error", reject);
    ws.once("open", () => resolve(ws));
  });
}

// The `"t":<integer>` of a delivery, or -1 (sync envelopes and anything else).
function stamp(buf) {
  const at = buf.indexOf(T_KEY);
  if (at < 0) return -1;
  let v = 0;
  for (let i = at + 4; i < buf.length; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return v;
}

async function subscribers() {
  const [clients, events, stream, group] = [Number(rest[0]), Number(rest[1]), rest[2], rest[3]];
  // Latency histogram in 10 µs buckets (sparse on output), capped at 60 s.
  const hist = new Map();
  let received = 0;
  let first = 0;
  let last = 0;
  let closed = 0;
  let finished = 0;
  const sockets = [];
  const report = () => {
    process.stdout.write(JSON.stringify({
      received, first_us: first, last_us: last, closed, hist: [...hist.entries()],
    }) + "\n");
    setTimeout(() => process.exit(0), 100);
  };
  for (let start = 0; start < clients; start += 50) {
    const batch = [];
    for (let i = start; i < Math.min(clients, start + 50); i++) batch.push(connect(url));
    sockets.push(...(await Promise.all(batch)));
  }
  await Promise.all(sockets.map((ws, i) => new Promise((resolve) => {
    let got = 0;
    ws.on("close", () => { closed++; });
    ws.on("message", (buf) => {
      const t = stamp(buf);
      if (t < 0) { resolve(); return; } // the sync that answers the join
      const now = nowUs();
      const bucket = Math.min(6_000_000, Math.max(0, Math.round((now - t) / 10)));
      hist.set(bucket, (hist.get(bucket) || 0) + 1);
      received++;
      if (!first) first = now;
      last = now;
      if (++got === events && ++finished === clients) report();
    });
    ws.send(JSON.stringify({
      type: "join", data: { subscriptionId: `s${i}`, streamName: stream, groupId: group },
    }));
  })));
  process.stdout.write("ready\n");
  // "stop" on stdin: report what arrived so far (the bench gave up waiting for the rest).
  readline.createInterface({ input: process.stdin }).on("line", (l) => { if (l === "stop") report(); });
}

async function producer() {
  const [events, rate, inflight] = rest.slice(0, 3).map(Number);
  const [stream, group] = rest.slice(3);
  // Attach the listener before the upgrade completes: workerregistered can arrive with it.
  const ws = await new Promise((resolve, reject) => {
    const sock = new WebSocket(url, { perMessageDeflate: false });
    sock.once("error", reject);
    sock.once("close", (code) => reject(new Error(`engine closed the producer (${code})`)));
    sock.once("message", () => resolve(sock));
  });
  ws.removeAllListeners("close");
  const prefix = "00000000-0000-4000-8000-";
  let sent = 0;
  let done = 0;
  let inFlight = 0;
  let t0 = 0;
  let finish;
  const finished = new Promise((r) => { finish = r; });
  const fire = () => {
    const i = sent++;
    inFlight++;
    ws.send(JSON.stringify({
      type: "invokefunction",
      invocation_id: prefix + String(i).padStart(12, "0"),
      function_id: "stream::set",
      data: { stream_name: stream, group_id: group, item_id: String(i % 50), data: { i, t: nowUs() } },
    }));
  };
  // Fixed rate: open loop on a schedule (window `inflight` only as a safety cap); max: keep
  // `inflight` sets outstanding.
  const pump = () => {
    if (rate > 0) {
      const due = Math.min(events, Math.floor(((nowUs() - t0) * rate) / 1e6) + 1);
      while (sent < due && inFlight < inflight) fire();
      if (sent < events) setTimeout(pump, 1);
    } else {
      while (sent < events && inFlight < inflight) fire();
    }
  };
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.type !== "invocationresult") return;
    if (msg.error) { console.error("stream::set failed", JSON.stringify(msg.error)); process.exit(2); }
    inFlight--;
    if (++done === events) finish();
    else if (rate === 0) pump();
  });
  t0 = nowUs();
  pump();
  await finished;
  const end = nowUs();
  process.stdout.write(JSON.stringify({
    sets: done, start_us: t0, end_us: end, sets_per_s: done / ((end - t0) / 1e6),
  }) + "\n");
  ws.close();
  setTimeout(() => process.exit(0), 100);
}

(role === "producer" ? producer() : subscribers()).catch((e) => { console.error(e); process.exit(1); });
