"""Stream fan-out benchmark: ``stream::set`` → N subscribed WebSocket clients.

Starts an engine with the stream module (SQLite in memory) in this process and N plain
WebSocket clients (``websockets``) in a child process, all joined to one group.  A worker calls
``stream::set`` M times (``--rate`` per second, 0 = as fast as the calls return); each value
carries its send time.  Reported: deliveries per second (all clients, first set to last
delivery) and set→delivery latency p50/p99 over every delivery.

    python bench/stream_bench.py --clients 1000 --events 200 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

WS_OPTS = {"max_size": None, "max_queue": None}


async def clients_main(port: int, n: int, events: int) -> None:
    import websockets

    sockets = []
    for start in range(0, n, 100):
        batch = await asyncio.gather(
            *(
                websockets.connect(f"ws://127.0.0.1:{port}/", **WS_OPTS)
                for _ in range(min(100, n - start))
            )
        )
        sockets.extend(batch)
    for i, ws in enumerate(sockets):
        join = {"subscriptionId": f"s{i}", "streamName": "bench", "groupId": "g"}
        await ws.send(json.dumps({"type": "join", "data": join}))
    await asyncio.gather(*(ws.recv() for ws in sockets))  # the syncs
    print("READY", flush=True)
    latencies: list[float] = []
    last = 0.0

    async def read(ws: object) -> None:
        nonlocal last
        for _ in range(events):
            msg = json.loads(await ws.recv())  # type: ignore[attr-defined]
            now = time.time()
            latencies.append(now - msg["event"]["data"]["t"])
            last = max(last, now)

    await asyncio.wait_for(asyncio.gather(*(read(ws) for ws in sockets)), 600)
    print(json.dumps({"latencies": latencies, "last": last}), flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def bench(n: int, events: int, rate: float) -> dict[str, float]:
    from iii_core.testing import raw_worker, running_engine

    config = {
        "modules": [
            {
                "class": "modules::stream::StreamModule",
                "config": {
                    "port": 0,
                    "adapter": {
                        "class": "modules::stream::adapters::SqliteAdapter",
                        "config": {"path": ":memory:"},
                    },
                },
            }
        ]
    }
    async with running_engine(config) as engine, raw_worker(engine) as w:
        module = engine.modules[-1]
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            str(module.port),
            "--clients",
            str(n),
            "--events",
            str(events),
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # the child's report is one long JSON line
        )
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 300)
        assert line.strip() == b"READY", line
        first = time.time()
        for i in range(events):
            data = {"i": i, "t": time.time()}
            await w.call(
                "stream::set",
                {"stream_name": "bench", "group_id": "g", "item_id": str(i % 50), "data": data},
            )
            if rate:
                await asyncio.sleep(max(0.0, first + (i + 1) / rate - time.time()))
        result = json.loads(await asyncio.wait_for(child.stdout.readline(), 600))
        await child.wait()
    lat = sorted(result["latencies"])
    total = len(lat)
    elapsed = result["last"] - first
    return {
        "clients": n,
        "events": events,
        "deliveries": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "p50_ms": lat[total // 2] * 1000,
        "p99_ms": lat[min(total - 1, int(total * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="iii stream fan-out benchmark")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, nargs="*", default=[0, 20], help="sets/s; 0 = max")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(clients_main(args.child, args.clients, args.events))
        return
    rows = [
        asyncio.run(bench(args.clients, args.events, rate)) | {"set_rate": rate}
        for rate in args.rate
    ]
    print(f"\niii stream fan-out: {args.clients} WebSocket clients on one group\n")
    head = (
        f"{'sets/s asked':>12} {'events':>7} {'deliveries':>11} {'seconds':>8} "
        f"{'deliv/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        asked = "max" if not r["set_rate"] else f"{r['set_rate']:g}"
        print(
            f"{asked:>12} {r['events']:>7} {r['deliveries']:>11} {r['seconds']:>8.2f} "
            f"{r['rate']:>10.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        )


if __name__ == "__main__":
    main()
