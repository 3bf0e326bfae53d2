"""Queue throughput: enqueue -> worker handler -> ack, messages per second.

Runs an in-process engine with the queue module (SQLite file, then Redis), a worker over a real
WebSocket that handles every message, and a producer worker that keeps ``--window`` enqueue calls
in flight.  The ceiling is a bare redis-py loop on the same Redis: a producer LPUSHes and a
consumer BRPOPs (one round trip each per message, ``--window`` producers).  Not a test.

    python bench/queue_bench.py [--messages 5000] [--window 64] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from typing import Any

import redis.asyncio as aioredis

from iii_core.testing import raw_worker, redis_server, running_engine


async def queue_run(adapter: dict[str, Any], n: int, window: int, concurrency: int) -> float:
    config = {
        "modules": [
            {
                "class": "modules::queue::QueueModule",
                "config": {"adapter": adapter, "defaults": {"concurrency": concurrency}},
            }
        ]
    }
    async with running_engine(config) as engine, raw_worker(engine) as w, raw_worker(engine) as p:
        done = asyncio.Event()
        handled = 0

        async def handle(data: Any) -> None:
            nonlocal handled
            handled += 1
            if handled == n:
                done.set()

        await w.register_function("bench.handle", handle)
        await w.register_trigger("queue", "bench.handle", {"topic": "bench"})
        await asyncio.sleep(0.2)
        counter = iter(range(n))
        start = time.perf_counter()

        async def producer() -> None:
            for i in counter:
                await p.call("enqueue", {"topic": "bench", "data": {"i": i}}, timeout=60)

        await asyncio.gather(*(producer() for _ in range(window)))
        await asyncio.wait_for(done.wait(), 300)
        return n / (time.perf_counter() - start)


async def ceiling_run(url: str, n: int, window: int) -> float:
    client = aioredis.Redis.from_url(url, max_connections=window + 4)
    await client.delete("bench:list")
    counter = iter(range(n))
    start = time.perf_counter()

    async def producer() -> None:
        for i in counter:
            await client.lpush("bench:list", i)

    async def consumer() -> None:
        for _ in range(n):
            await client.brpop(["bench:list"], timeout=30)

    await asyncio.gather(consumer(), *(producer() for _ in range(window)))
    rate = n / (time.perf_counter() - start)
    await client.aclose()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = {"class": "modules::queue::BuiltinQueueAdapter", "config": {"path": f"{tmp}/q.db"}}
        rows.append(
            (
                "sqlite adapter",
                await queue_run(sqlite, args.messages, args.window, args.concurrency),
            )
        )
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_server())
        redis = {"class": "adapters::redis::RedisQueueAdapter", "config": {"redis_url": url}}
        rows.append(
            ("redis adapter", await queue_run(redis, args.messages, args.window, args.concurrency))
        )
        ceiling = await ceiling_run(url, args.messages, args.window)
        rows.append(("bare redis-py LPUSH/BRPOP (ceiling)", ceiling))
    print(
        f"\n{args.messages} messages, {args.window} enqueues in flight, "
        f"concurrency {args.concurrency}"
    )
    print(f"{'run':40} {'msg/s':>10} {'of ceiling':>11}")
    for name, rate in rows:
        print(f"{name:40} {rate:10.0f} {rate / ceiling:10.0%}")


if __name__ == "__main__":
    asyncio.run(main())
