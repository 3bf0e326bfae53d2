// A worker written with the published npm iii-sdk 0.22 that authenticates with its `headers`
// option.   node node_auth_worker.mjs <engine-url> <prefix>   (token in $WORKER_TOKEN)
import { registerWorker } from "iii-sdk";

const [, , url, prefix] = process.argv;
const iii = registerWorker(url, {
  workerName: prefix,
  headers: { Authorization: `Bearer ${process.env.WORKER_TOKEN}` },
  otel: { enabled: false },
});
iii.registerFunction(`${prefix}.add`, async (data) => ({ sum: data.a + data.b }));
console.log("ready");
