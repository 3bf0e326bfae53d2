"""HTTP through the engine to a worker, next to a plain Starlette route (the ceiling).

One command, prints a table::

    python bench/http_bench.py [--seconds 3] [--rounds 3] [--concurrency 32]
                               [--servers uvicorn,hypercorn]

For each server it starts, in separate processes: the engine (uvloop) with the HTTP API and an
extra plain Starlette route ``/__plain`` on the same server that returns the same JSON without
the engine; a raw-protocol Node worker (``ws`` from ``bench/node_modules``) serving ``bench.hello``
behind an ``http`` trigger; and a Node load client (keep-alive, ``--concurrency`` connections).
The two routes are measured in alternating rounds (the machine is shared, so load changes during
a run); the table gives the median of the rounds for requests/s, p50 and p99, and the ratio of the
median rates.  Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import free_port, process  # noqa: E402

NODE_MODULES = HERE / "node_modules"
BODY = {"hello": "world"}

WORKER_JS = """
const WebSocket = require('ws')
const ws = new WebSocket(process.argv[2], { perMessageDeflate: false })
const result = JSON.stringify({ status_code: 200, body: { hello: 'world' } })
ws.on('open', () => {
  ws.send(JSON.stringify({ type: 'registerfunction', id: 'bench.hello' }))
  ws.send(JSON.stringify({ type: 'registertrigger', id: 'bench-trigger', trigger_type: 'http',
    function_id: 'bench.hello', config: { api_path: 'hello', http_method: 'GET' } }))
})
ws.on('message', (raw) => {
  const s = raw.toString()
  if (!s.includes('"invokefunction"')) return
  const m = JSON.parse(s)
  ws.send('{"type":"invocationresult","invocation_id":"' + m.invocation_id +
    '","function_id":"bench.hello","result":' + result + '}')
})
"""

LOAD_JS = """
const http = require('http')
const [url, seconds, concurrency] = [process.argv[2], +process.argv[3], +process.argv[4]]
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
const lat = []
let errors = 0
const end = Date.now() + seconds * 1000
function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint()
    http.get(url, { agent }, (res) => {
      res.resume()
      res.on('end', () => {
        if (res.statusCode !== 200) errors++
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
        resolve()
      })
    }).on('error', () => { errors++; resolve() })
  })
}
async function loop() { while (Date.now() < end) await one() }
const t0 = Date.now()
Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
  const elapsed = (Date.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] || 0
  console.log(JSON.stringify({ rps: lat.length / elapsed, p50: q(0.5), p99: q(0.99), errors }))
  agent.destroy()
})
"""


def serve(server: str, worker_port: int, http_port: int) -> None:
    """Engine process: the HTTP API plus the plain ceiling route on the same Starlette app."""
    import uvloop
    from iii_rest import RestApiModule
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from iii_core.testing import running_engine

    async def plain(request: object) -> JSONResponse:
        return JSONResponse(BODY)

    async def main() -> None:
        config = {
            "modules": [
                {
                    "class": "modules::rest_api::RestApiModule",
                    "config": {"port": http_port, "server": server},
                }
            ]
        }
        async with running_engine(config, port=worker_port) as engine:
            module = next(m for m in engine.modules if isinstance(m, RestApiModule))
            module.app.router.routes.insert(0, Route("/__plain", plain))
            await asyncio.Event().wait()

    uvloop.run(main())


def wait_http(url: str, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200")


def load(tmp: str, url: str, seconds: float, concurrency: int) -> dict[str, float]:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    out = subprocess.run(
        ["node", os.path.join(tmp, "load.js"), url, str(seconds), str(concurrency)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout)


def median(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Median rate and latencies over the rounds; errors are summed."""
    out = {k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50", "p99")}
    out["errors"] = sum(r["errors"] for r in rounds)
    return out


def run(
    server: str, seconds: float, rounds: int, concurrency: int, tmp: str
) -> list[tuple[str, dict[str, float]]]:
    worker_port, http_port = free_port(), free_port()
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    with process([sys.executable, __file__, "--serve", server, str(worker_port), str(http_port)]):
        base = f"http://127.0.0.1:{http_port}"
        wait_http(f"{base}/__plain")
        with process(
            ["node", os.path.join(tmp, "worker.js"), f"ws://127.0.0.1:{worker_port}"], env=env
        ):
            wait_http(f"{base}/hello")
            load(tmp, f"{base}/hello", 1, concurrency)  # warm-up
            load(tmp, f"{base}/__plain", 1, concurrency)
            plain: list[dict[str, float]] = []
            engine: list[dict[str, float]] = []
            for n in range(rounds):
                order = [("__plain", plain), ("hello", engine)]
                for path, out in order if n % 2 == 0 else order[::-1]:
                    out.append(load(tmp, f"{base}/{path}", seconds, concurrency))
    return [("plain Starlette route", median(plain)), ("http trigger → worker", median(engine))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--servers", default="uvicorn,hypercorn")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
        return
    if not (NODE_MODULES / "ws").is_dir():
        sys.exit(f"run 'npm install' in {NODE_MODULES.parent} first (needs the 'ws' package)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "worker.js").write_text(WORKER_JS)
        Path(tmp, "load.js").write_text(LOAD_JS)
        print(
            f"{args.concurrency} keep-alive connections, median of {args.rounds} alternating "
            f"rounds of {args.seconds:g} s per route\n"
        )
        print(
            f"{'server':<10} {'route':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        )
        for server in args.servers.split(","):
            rows = run(server, args.seconds, args.rounds, args.concurrency, tmp)
            for name, r in rows:
                print(
                    f"{server:<10} {name:<24} {r['rps']:>9.0f} {r['p50']:>8.2f} "
                    f"{r['p99']:>8.2f} {r['errors']:>7.0f}"
                )
            ratio = rows[1][1]["rps"] / rows[0][1]["rps"] if rows[0][1]["rps"] else 0.0
            print(f"{server:<10} {'ratio engine/plain':<24} {ratio:>9.0%}\n")


if __name__ == "__main__":
    main()
