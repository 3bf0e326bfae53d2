"""Cross-worker request/response through the engine, compared with a minimal relay.

One command, prints a table::

    python bench/invoke_bench.py [--seconds 5] [--cases seq,64x1,64x8] [--sdk]

Two worker processes (a caller and a callee, minimal raw-protocol Node ``ws`` clients, so that the
engine and not the clients is what is measured) talk through (a) the engine and (b) the minimal
relay in ``bench/relay.py`` (same aiohttp server and uvloop).  Cases: sequential (one call in
flight), 64 calls in flight over 1 connection, and 64 in flight over 8 connections.  With
``--sdk`` a last case runs this repo's Python SDK (``iii_worker``) as caller and callee.
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import (  # noqa: E402
    engine_command,
    ensure_node_clients,
    free_port,
    process,
    wait_port,
)

CASES = {"seq": (1, 1), "64x1": (1, 64), "64x8": (8, 8)}
FUNCTION = "bench.echo"


@contextlib.contextmanager
def server(kind: str) -> Iterator[str]:
    port = free_port()
    if kind == "relay":
        args = [sys.executable, str(HERE / "relay.py"), str(port)]
    else:
        args = engine_command("modules: []\n", port)
    with process(args) as proc:
        wait_port(port, proc)
        yield f"ws://127.0.0.1:{port}/"


def run_case(
    url: str, connections: int, inflight: int, seconds: float, sdk: bool
) -> dict[str, float]:
    client = (
        [sys.executable, str(HERE / "sdk_clients.py")]
        if sdk
        else ["node", str(HERE / "clients.mjs")]
    )
    callee = [*client, "callee", url, FUNCTION]
    caller = [*client, "caller", url, FUNCTION, str(connections), str(inflight), str(seconds), "1"]
    with process(callee, stdout=subprocess.PIPE) as callee_proc:
        assert callee_proc.stdout is not None
        if callee_proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("callee did not start")
        time.sleep(0.2)
        out = subprocess.run(caller, capture_output=True, check=True, timeout=seconds + 60)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cases", default="seq,64x1,64x8")
    parser.add_argument("--sdk", action="store_true", help="also run this repo's SDK case")
    args = parser.parse_args()
    ensure_node_clients()
    rows = []
    plan = [(name, *CASES[name], False) for name in args.cases.split(",")]
    if args.sdk:
        plan.append(("sdk 64x1", 1, 64, True))
    results: dict[tuple[str, str], dict[str, float]] = {}
    for target in ("relay", "engine"):
        with server(target) as url:
            for name, conns, inflight, sdk in plan:
                results[(target, name)] = run_case(url, conns, inflight, args.seconds, sdk)
    header = (
        f"{'case':<10} {'target':<7} {'calls/s':>9} {'p50 us':>8} {'p99 us':>8} {'vs relay':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, *_ in plan:
        relay = results[("relay", name)]
        for target in ("relay", "engine"):
            r = results[(target, name)]
            if target == "relay":
                ratio = ""
            else:
                ratio = (
                    f"{r['calls_per_s'] / relay['calls_per_s']:.2f}x tput"
                    if name != "seq"
                    else f"{r['p50_us'] / relay['p50_us']:.2f}x p50"
                )
            rows.append(
                f"{name:<10} {target:<7} {r['calls_per_s']:>9.0f} {r['p50_us']:>8.0f} "
                f"{r['p99_us']:>8.0f} {ratio:>9}"
            )
    print("\n".join(rows))
    print(
        f"\n{os.cpu_count()} CPUs; {args.seconds:.0f} s per case after 1 s warm-up; "
        "clients: Node ws raw protocol" + (" (+ iii_worker SDK case)" if args.sdk else "")
    )


if __name__ == "__main__":
    main()
