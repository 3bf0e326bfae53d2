// The tour's Node worker (published npm `iii-sdk`).
//
// It registers `greet.hello`, which calls the Python worker's `math.add`, and exposes it over
// HTTP: GET http://127.0.0.1:3111/hello?name=Ada
import { registerWorker } from 'iii-sdk'

const iii = registerWorker(process.env.III_URL ?? 'ws://127.0.0.1:49134', {
  workerName: 'tour-node',
})

async function hello({ name = 'world' } = {}) {
  const { sum } = await iii.trigger({ function_id: 'math.add', payload: { a: 2, b: 3 } })
  return { message: `Hello, ${name}! (Python says 2 + 3 = ${sum})` }
}

iii.registerFunction('greet.hello', hello, { description: 'Greet someone' })

iii.registerFunction(
  'greet.http',
  async (req) => ({ status_code: 200, body: await hello({ name: req.query_params?.name }) }),
  { description: 'greet.hello over HTTP' },
)
iii.registerTrigger({
  type: 'http',
  function_id: 'greet.http',
  config: { api_path: 'hello', http_method: 'GET' },
})

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    await iii.shutdown()
    process.exit(0)
  })
}
