// A worker written with the published npm iii-sdk (0.9 and 0.22).
//   node node_sdk_worker.mjs <engine-url> <prefix>
// Registers <prefix>.add, .fail, .slow, .relay, .void, .record, then prints "ready".
import { appendFileSync, readFileSync } from "node:fs";
import { registerWorker, TriggerAction } from "iii-sdk";

const [, , url, prefix] = process.argv;
const pkg = new URL("./node_modules/iii-sdk/package.json", import.meta.url);
const version = JSON.parse(readFileSync(pkg, "utf8")).version;
const modern = !version.startsWith("0.9.");
const iii = registerWorker(url, { workerName: prefix, otel: { enabled: false } });

const register = (id, handler) =>
  modern ? iii.registerFunction(id, handler) : iii.registerFunction({ id }, handler);

register(`${prefix}.add`, async (data) => ({ sum: data.a + data.b }));
register(`${prefix}.fail`, async () => { throw new Error("boom: bad input"); });
register(`${prefix}.slow`, async (data) => {
  await new Promise((r) => setTimeout(r, (data.seconds ?? 60) * 1000));
  return "done";
});
register(`${prefix}.relay`, async (data) => {
  try {
    return { ok: await iii.trigger({ function_id: data.target, payload: data.data, timeout_ms: 15000 }) };
  } catch (err) {
    return { error: String(err?.message ?? JSON.stringify(err)), code: err?.code ?? null };
  }
});
register(`${prefix}.void`, async (data) => {
  await iii.trigger({ function_id: data.target, payload: data.data, action: TriggerAction.Void() });
  return "sent";
});
register(`${prefix}.record`, async (data) => {
  appendFileSync(process.env.RECORD_FILE, JSON.stringify(data) + "\n");
  return null;
});
console.log("ready");
