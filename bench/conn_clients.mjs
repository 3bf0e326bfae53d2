// Raw-protocol Node `ws` clients for the connection-scale benchmark (bench/connections_bench.py).
//
//   node conn_clients.mjs crowd <url> <first> <count> <concurrency>
//       opens <count> worker connections, each registering `conn.<first + k>` and echoing calls,
//       <concurrency> handshakes in flight at once; prints one JSON line when all are registered,
//       then on the stdin line "close" closes them all and prints a JSON line when every close
//       handshake has finished.
//   node conn_clients.mjs caller <url> <functions> <inflight> <seconds> <warmup_s>
//       one connection keeping <inflight> calls in flight to random `conn.<0..functions-1>`;
//       prints calls/s and latency percentiles.
//   node conn_clients.mjs gauges <url>
//       calls engine::workers::list and engine::functions::list; prints their sizes.
import WebSocket from "ws";
import readline from "node:readline";

const [, , role, url, ...rest] = process.argv;
const PREFIX = "00000000-0000-4000-8000-";
let seq = 0;
const nextId = () => PREFIX + String(seq++).padStart(12, "0");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Resolves with the socket once the engine has sent `workerregistered`.
function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("close", (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
    ws.once("message", (raw) => {
      const msg = JSON.parse(raw.toString());
      if (msg.type !== "workerregistered") reject(new Error(`expected workerregistered: ${raw}`));
      ws.removeAllListeners("error");
      ws.removeAllListeners("close");
      resolve(ws);
    });
  });
}

function echo(ws) {
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.type === "invokefunction" && msg.invocation_id) {
      ws.send(JSON.stringify({
        type: "invocationresult",
        invocation_id: msg.invocation_id,
        function_id: msg.function_id,
        result: msg.data,
      }));
    }
  });
}

async function crowd() {
  const [first, count, concurrency] = rest.map(Number);
  const sockets = [];
  const failures = [];
  let next = 0;
  let unexpectedCloses = 0;
  let closing = false;
  const t0 = process.hrtime.bigint();
  // `concurrency` lanes, each opening its next connection as soon as the previous is registered.
  const lane = async () => {
    while (next < count) {
      const i = first + next++;
      try {
        const ws = await open(url);
        ws.on("error", () => {});
        ws.on("close", () => { if (!closing) unexpectedCloses++; });
        ws.send(JSON.stringify({ type: "registerfunction", id: `conn.${i}` }));
        echo(ws);
        sockets.push(ws);
      } catch (e) {
        failures.push(String(e.message ?? e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  out({
    connected: sockets.length, failed: failures.length, failures: failures.slice(0, 5),
    ms: Number(process.hrtime.bigint() - t0) / 1e6,
  });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === "status") {
      out({ open: sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length, unexpectedCloses });
    } else if (line.trim() === "close") {
      closing = true;
      const t1 = process.hrtime.bigint();
      await Promise.all(sockets.map((ws) => new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once("close", resolve);
        ws.close(1000);
      })));
      out({ closed: sockets.length, unexpectedCloses, ms: Number(process.hrtime.bigint() - t1) / 1e6 });
      process.exit(0);
    }
  }
}

async function caller() {
  const [functions, inflight, seconds, warmup] = rest.map(Number);
  const ws = await open(url);
  const latencies = [];
  const started = new Map();
  let done = 0;
  let errors = 0;
  let measuring = false;
  let stopping = false;
  const fire = () => {
    const id = nextId();
    started.set(id, process.hrtime.bigint());
    const n = Math.floor(Math.random() * functions);
    ws.send(JSON.stringify({
      type: "invokefunction", invocation_id: id, function_id: `conn.${n}`, data: { n },
    }));
  };
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.type !== "invocationresult") return;
    const t0 = started.get(msg.invocation_id);
    started.delete(msg.invocation_id);
    if (msg.error) {
      errors++;
      if (errors <= 3) console.error("error", JSON.stringify(msg.error));
    } else if (measuring) {
      latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
      done++;
    }
    if (!stopping) fire();
  });
  for (let i = 0; i < inflight; i++) fire();
  await new Promise((r) => setTimeout(r, warmup * 1000));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  stopping = true;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  out({ calls: done, errors, seconds: elapsed, calls_per_s: done / elapsed,
        p50_us: pct(0.5), p99_us: pct(0.99) });
  await new Promise((r) => setTimeout(r, 200));
  process.exit(errors ? 2 : 0);
}

async function gauges() {
  const ws = await open(url);
  const call = (function_id) => new Promise((resolve, reject) => {
    const id = nextId();
    const onMessage = (raw) => {
      const msg = JSON.parse(raw.toString());
      if (msg.type !== "invocationresult" || msg.invocation_id !== id) return;
      ws.off("message", onMessage);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    };
    ws.on("message", onMessage);
    ws.send(JSON.stringify({ type: "invokefunction", invocation_id: id, function_id, data: {} }));
  });
  const workers = (await call("engine::workers::list")).workers;
  const functions = (await call("engine::functions::list")).functions;
  // This client is itself a connected worker: leave it out of the count.
  out({ workers: workers.length - 1, functions: functions.length });
  ws.close();
}

const roles = { crowd, caller, gauges };
if (!roles[role]) { console.error(`unknown role ${role}`); process.exit(64); }
roles[role]().catch((e) => { console.error(e); process.exit(1); });
