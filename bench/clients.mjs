// Minimal raw-protocol iii clients for the benchmark (Node + ws): a callee that echoes and a
// caller that keeps N calls in flight per connection and reports latency percentiles.
//
//   node clients.mjs callee <url> <function_id>
//   node clients.mjs caller <url> <function_id> <connections> <inflight_per_conn> <seconds> <warmup_s>
import WebSocket from "ws";

const [, , role, url, functionId, ...rest] = process.argv;

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("message", (raw) => {
      const msg = JSON.parse(raw.toString());
      if (msg.type !== "workerregistered") reject(new Error("expected workerregistered"));
      resolve(ws);
    });
  });
}

async function callee() {
  const ws = await open(url);
  ws.send(JSON.stringify({ type: "registerfunction", id: functionId }));
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.type === "invokefunction") {
      ws.send(JSON.stringify({
        type: "invocationresult",
        invocation_id: msg.invocation_id,
        function_id: msg.function_id,
        result: { n: msg.data.n },
      }));
    }
  });
  process.stdout.write("ready\n");
}

async function caller() {
  const [connections, inflight, seconds, warmup] = rest.map(Number);
  const sockets = [];
  for (let i = 0; i < connections; i++) sockets.push(await open(url));
  const latencies = [];
  let done = 0;
  let measuring = false;
  let stopping = false;
  let seq = 0;
  const started = new Map();
  const prefix = "00000000-0000-4000-8000-";
  const fire = (ws) => {
    const id = prefix + String(seq++).padStart(12, "0");
    started.set(id, process.hrtime.bigint());
    ws.send(JSON.stringify({
      type: "invokefunction", invocation_id: id, function_id: functionId, data: { n: seq },
    }));
  };
  for (const ws of sockets) {
    ws.on("message", (raw) => {
      const msg = JSON.parse(raw.toString());
      if (msg.type !== "invocationresult") return;
      const t0 = started.get(msg.invocation_id);
      started.delete(msg.invocation_id);
      if (msg.error) { console.error("error", JSON.stringify(msg.error)); process.exit(2); }
      if (measuring) { latencies.push(Number(process.hrtime.bigint() - t0) / 1000); done++; }
      if (!stopping) fire(ws);
    });
  }
  for (const ws of sockets) for (let i = 0; i < inflight; i++) fire(ws);
  await new Promise((r) => setTimeout(r, warmup * 1000));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  stopping = true;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  process.stdout.write(JSON.stringify({
    calls: done, seconds: elapsed, calls_per_s: done / elapsed,
    p50_us: pct(0.5), p99_us: pct(0.99),
  }) + "\n");
  await new Promise((r) => setTimeout(r, 200));
  process.exit(0);
}

(role === "callee" ? callee() : caller()).catch((e) => { console.error(e); process.exit(1); });
