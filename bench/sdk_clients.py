"""Benchmark clients written with this repo's SDK (``iii_worker``), same roles as clients.mjs.

python sdk_clients.py callee <url> <function_id>
python sdk_clients.py caller <url> <function_id> <connections> <inflight> <seconds> <warmup_s>
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import iii_worker


async def callee(url: str, function_id: str) -> None:
    worker = await iii_worker.connect(url, name="bench-callee")

    async def echo(data: Any) -> Any:
        return {"n": data["n"]}

    worker.register_function(function_id, echo)
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    await worker.run_forever()


async def caller(
    url: str, function_id: str, conns: int, inflight: int, seconds: float, warmup: float
) -> None:
    workers = [await iii_worker.connect(url, name=f"bench-caller-{i}") for i in range(conns)]
    latencies: list[float] = []
    state = {"measuring": False, "stop": False, "n": 0}

    async def loop(worker: Any) -> None:
        while not state["stop"]:
            state["n"] += 1
            t0 = time.perf_counter()
            await worker.call(function_id, {"n": state["n"]})
            if state["measuring"]:
                latencies.append((time.perf_counter() - t0) * 1e6)

    tasks = [asyncio.create_task(loop(w)) for w in workers for _ in range(inflight)]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - t0
    done = len(latencies)
    state["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))]

    print(
        json.dumps(
            {
                "calls": done,
                "seconds": elapsed,
                "calls_per_s": done / elapsed,
                "p50_us": pct(0.5),
                "p99_us": pct(0.99),
            }
        ),
        flush=True,
    )
    for w in workers:
        await w.close()


def main() -> None:
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    role, url, function_id, *rest = sys.argv[1:]
    if role == "callee":
        run(callee(url, function_id))
    else:
        conns, inflight = int(rest[0]), int(rest[1])
        run(caller(url, function_id, conns, inflight, float(rest[2]), float(rest[3])))


if __name__ == "__main__":
    main()
