// A worker written with the published Node iii-sdk: state calls and a state trigger.
// Prints one JSON line with every result, then exits. Usage: node state_client.mjs WS_URL
import { registerWorker } from 'iii-sdk'

const iii = registerWorker(process.argv[2])
const events = []
iii.registerFunction('node::on_change', async (data) => {
  events.push(data)
  return null
})
iii.registerTrigger({
  type: 'state',
  function_id: 'node::on_change',
  config: { scope: 'node', key: 'watched' },
})

const call = (function_id, payload) => iii.trigger({ function_id, payload })
const out = {}
out.set = await call('state::set', { scope: 'node', key: 'a', value: { n: 1 } })
out.get = await call('state::get', { scope: 'node', key: 'a' })
out.update = await call('state::update', {
  scope: 'node',
  key: 'a',
  ops: [
    { type: 'increment', path: 'n', by: 2 },
    { type: 'set', path: 'tag', value: 'x' },
    { type: 'merge', path: null, value: { m: 1 } },
    { type: 'decrement', path: 'd', by: 1 },
    { type: 'remove', path: 'm' },
  ],
})
out.list = await call('state::list', { scope: 'node' })
out.groups = await call('state::list_groups', {})
out.delete = await call('state::delete', { scope: 'node', key: 'a' })
out.get_missing = (await call('state::get', { scope: 'node', key: 'a' })) ?? null
out.kv_set = await call('kv_server::set', { index: 'nodei', key: 'k', value: 1 })
out.kv_get = await call('kv_server::get', { index: 'nodei', key: 'k' })
for (let attempt = 0; attempt < 50 && events.length === 0; attempt++) {
  await call('state::set', { scope: 'node', key: 'watched', value: attempt })
  await new Promise((resolve) => setTimeout(resolve, 200))
}
if (events.length) {
  const { _caller_worker_id, ...event } = events[0]
  out.event = event
} else {
  out.event = null
}
console.log(JSON.stringify(out))
process.exit(0)
