"""Cost of tracing on the core invocation benchmark: engine throughput with OtelModule off, on
at sampling 1.0 and on at sampling 0.1, measured in the same run (variants interleaved).

    python bench/otel_bench.py [--seconds 5] [--rounds 2]

Uses the repository's benchmark clients (``bench/clients.mjs``: a Node echo callee and a caller
keeping N calls in flight) against ``iii --config`` subprocesses.  Prints calls/s per variant
and the ratio to the untraced engine; the issue asks for >= 0.70 at sampling 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from benchlib import engine_command, free_port, wait_port  # noqa: E402

CLIENTS = os.path.join(ROOT, "bench", "clients.mjs")
OTEL = "modules::observability::OtelModule"

VARIANTS: dict[str, list[dict[str, object]]] = {
    "off": [],
    "on, sampling 1.0": [{"class": OTEL, "config": {"sampling_ratio": 1.0, "prometheus_port": 0}}],
    "on, sampling 0.1": [{"class": OTEL, "config": {"sampling_ratio": 0.1, "prometheus_port": 0}}],
}


def run(modules: list[dict[str, object]], seconds: float, connections: int, inflight: int) -> dict:
    port = free_port()
    engine = subprocess.Popen(
        engine_command(yaml.safe_dump({"modules": modules}), port), stdout=subprocess.DEVNULL
    )
    callee = None
    try:
        wait_port(port)
        url = f"ws://127.0.0.1:{port}/"
        callee = subprocess.Popen(
            ["node", CLIENTS, "callee", url, "bench.echo"], stdout=subprocess.PIPE, text=True
        )
        assert callee.stdout is not None and callee.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        out = subprocess.run(
            ["node", CLIENTS, "caller", url, "bench.echo", str(connections), str(inflight),
             str(seconds), "1"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for proc in (callee, engine):
            if proc is not None:
                proc.terminate()
                proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--inflight", type=int, default=32)
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, modules in VARIANTS.items():
            r = run(modules, args.seconds, args.connections, args.inflight)
            results[name].append(r["calls_per_s"])
            rate, p50 = r["calls_per_s"], r["p50_us"]
            print(f"{name:18s} {rate:9.0f} calls/s  p50 {p50:.0f} us", flush=True)
    base = max(results["off"])
    print("\nbest of rounds, ratio to off:")
    for name, values in results.items():
        print(f"{name:18s} {max(values):9.0f} calls/s  ratio {max(values) / base:.2f}")


if __name__ == "__main__":
    main()
