"""Stream fan-out benchmark: ``stream::set`` → N subscribed WebSocket clients.

The engine (stream module, SQLite in memory) runs in this process.  The load is Node (``ws``,
``bench/stream_clients.mjs``) so the clients are not what gets measured: N subscribers split
over ``--procs`` processes, all joined to one group, and a producer worker on the raw protocol
calling ``stream::set`` with its send time inside the item.  Each rate is one run (fresh group,
fresh clients): a fixed rate (open loop) and ``max`` (``--inflight`` sets outstanding).

Reported per run: sets/s achieved, deliveries/s (every client; first set to last delivery),
set→delivery latency p50/p99 over every delivery, deliveries missing and clients cut off.

    cd bench && npm install   # once (ws)
    python bench/stream_bench.py                      # 1000 clients, 100 sets/s and max
    python bench/stream_bench.py --rates 50 200 0 --events 2000 --profile /tmp/stream.prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import shutil
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "stream_clients.mjs")


def engine_config() -> dict[str, Any]:
    return {
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


async def node(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "node",
        CLIENTS,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,  # a report is one JSON line
    )


async def line(proc: asyncio.subprocess.Process, timeout: float) -> bytes:
    assert proc.stdout is not None
    out = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not out:
        raise RuntimeError(f"benchmark client exited early (code {await proc.wait()})")
    return out


def percentile(hist: dict[int, int], total: int, p: float) -> float:
    """The ``p`` quantile in ms of a histogram of 10 µs buckets."""
    rank = min(total - 1, int(total * p))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen > rank:
            return bucket / 100
    return float("nan")


async def run(
    engine: Any, port: int, args: argparse.Namespace, rate: float, run_no: int
) -> dict[str, Any]:
    group = f"g{run_no}"
    per = [args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)]
    subs = [
        await node(
            "subscribers", f"ws://127.0.0.1:{port}/", str(n), str(args.events), "bench", group
        )
        for n in per
        if n
    ]
    try:
        for proc in subs:
            assert (await line(proc, 120)).strip() == b"ready"
        producer = await node(
            "producer",
            f"ws://127.0.0.1:{engine.port}",
            str(args.events),
            str(rate),
            str(args.inflight),
            "bench",
            group,
        )
        produced = json.loads(await line(producer, 600))
        await producer.wait()
        # Deliveries still in flight get a grace period, then the clients report what arrived.
        reports: list[dict[str, Any]] = []
        for proc in subs:
            try:
                reports.append(json.loads(await line(proc, args.grace)))
            except TimeoutError:
                assert proc.stdin is not None
                proc.stdin.write(b"stop\n")
                reports.append(json.loads(await line(proc, 30)))
    finally:
        for proc in subs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
    hist: dict[int, int] = {}
    for r in reports:
        for bucket, count in r["hist"]:
            hist[bucket] = hist.get(bucket, 0) + count
    total = sum(r["received"] for r in reports)
    last = max((r["last_us"] for r in reports if r["received"]), default=produced["start_us"])
    seconds = max(1e-6, (last - produced["start_us"]) / 1e6)
    return {
        "asked": "max" if not rate else f"{rate:g}",
        "sets_per_s": produced["sets_per_s"],
        "deliveries": total,
        "missing": args.clients * args.events - total,
        "cut_off": sum(r["closed"] for r in reports),
        "seconds": seconds,
        "deliveries_per_s": total / seconds,
        "p50_ms": percentile(hist, total, 0.5) if total else float("nan"),
        "p99_ms": percentile(hist, total, 0.99) if total else float("nan"),
    }


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    from iii_core.testing import running_engine

    rows = []
    async with running_engine(engine_config()) as engine:
        module = engine.modules[-1]
        for run_no, rate in enumerate(args.rates):
            profiler = cProfile.Profile() if args.profile and not rate else None
            if profiler:
                profiler.enable()
            rows.append(await run(engine, module.port, args, rate, run_no))
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.profile)
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        slow = module.server.index.slow_clients_disconnected
    if slow:
        print(f"warning: the module cut off {slow} slow clients", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="iii stream fan-out benchmark (Node clients)")
    parser.add_argument("--clients", type=int, default=1000, help="subscribed WebSocket clients")
    parser.add_argument("--procs", type=int, default=2, help="Node processes for the clients")
    parser.add_argument("--events", type=int, default=500, help="stream::set calls per run")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[100, 0], help="sets/s per run; 0 = max"
    )
    parser.add_argument("--inflight", type=int, default=16, help="sets outstanding at max rate")
    parser.add_argument("--grace", type=float, default=60, help="s to wait for late deliveries")
    parser.add_argument("--profile", help="cProfile the engine during max-rate runs into FILE")
    args = parser.parse_args()
    if shutil.which("node") is None or not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        sys.exit("needs Node 20 and ws: cd bench && npm install")
    rows = asyncio.run(bench(args))
    print(f"\niii stream fan-out: {args.clients} WebSocket clients on one group, ", end="")
    print(f"{args.events} stream::set per run, {os.cpu_count()} CPUs\n")
    head = (
        f"{'sets/s asked':>12} {'sets/s':>8} {'deliveries':>11} {'missing':>8} {'cut off':>8} "
        f"{'deliv/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['asked']:>12} {r['sets_per_s']:>8.0f} {r['deliveries']:>11} {r['missing']:>8} "
            f"{r['cut_off']:>8} {r['deliveries_per_s']:>10.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f}"
        )


if __name__ == "__main__":
    main()
