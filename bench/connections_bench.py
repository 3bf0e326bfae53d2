"""10 000 concurrent worker connections against one engine.

One command, prints a table::

    python bench/connections_bench.py [--connections 10000] [--procs 4] [--concurrency 200]
                                      [--seconds 5]

Starts an ``iii`` engine subprocess (no modules) and, with minimal raw-protocol Node ``ws`` clients
(``bench/conn_clients.mjs``, ``bench/clients.mjs``):

1. measures a busy pair (one caller keeping 64 calls in flight to one echo worker) on its own;
2. opens ``--connections`` worker connections from ``--procs`` Node processes, ``--concurrency``
   handshakes in flight in total, each registering ``conn.<i>`` and echoing its calls, and reports
   the time to connect and register them all and the engine's RSS (``VmRSS``) per connection;
3. with the crowd connected, measures the busy pair again, and one caller invoking random crowd
   workers (1 and 64 calls in flight);
4. closes every crowd connection and reports the time until ``engine::workers::list`` and
   ``engine::functions::list`` are back to their counts before the crowd.

The engine gets a raised ``RLIMIT_NOFILE`` (set here, inherited by every child) and a
``max_connections`` above the crowd.  Exits 1 if a connection fails, a crowd socket is closed
by the engine, a call fails, or the engine's registries do not return to their baseline, so a
small run (``--connections 1000``) doubles as a correctness check.  Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import engine_command, ensure_node_clients, free_port, process, wait_port

HERE = Path(__file__).resolve().parent
NOFILE = 65536
BUSY_FUNCTION = "bench.echo"


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's (and so its children's) open-file limit; returns the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, PermissionError):  # no CAP_SYS_RESOURCE: settle for the hard limit
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def tcp_counters() -> dict[str, int]:
    """Host-wide (network namespace) TCP counters that show a full accept queue."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {k: table.get(k, 0) for k in ("ListenOverflows", "TCPSynRetrans")}
    return {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid`` in KiB, from ``/proc/<pid>/status``."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def close_crowd(crowd: list[subprocess.Popen[str]]) -> None:
    """Tell every crowd process to close its sockets, and wait until each has."""
    for proc in crowd:
        assert proc.stdin is not None
        proc.stdin.write("close\n")
        proc.stdin.flush()
    for proc in crowd:
        read_json(proc, "crowd process")


def read_json(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited ({proc.wait()}) without output")
    result: dict[str, Any] = json.loads(line)
    return result


def node(*args: str) -> list[str]:
    return ["node", str(HERE / args[0]), *args[1:]]


def gauges(url: str) -> dict[str, int]:
    out = subprocess.run(
        node("conn_clients.mjs", "gauges", url),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def wait_gauges(url: str, want: dict[str, int], timeout: float) -> tuple[float, dict[str, int]]:
    """Poll the engine's registries until they equal ``want``; returns (seconds, last reading)."""
    t0 = time.monotonic()
    while True:
        got = gauges(url)
        if got == want or time.monotonic() - t0 > timeout:
            return time.monotonic() - t0, got
        time.sleep(0.05)


def run_caller(args: list[str], seconds: float) -> dict[str, Any]:
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"caller failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def crowd_round(url: str, n: int, procs: int, lanes: int) -> int:
    """Connect ``n`` crowd workers, then close them all; returns how many connected."""
    share, extra = divmod(n, procs)
    with contextlib.ExitStack() as stack:
        crowd = []
        first = 0
        for p in range(procs):
            count = share + (1 if p < extra else 0)
            args = node("conn_clients.mjs", "crowd", url, str(first), str(count), str(lanes))
            crowd.append(
                stack.enter_context(
                    process(text=True, args=args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                )
            )
            first += count
        connected = sum(read_json(proc, "crowd process")["connected"] for proc in crowd)
        close_crowd(crowd)
    return connected


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=4, help="Node processes holding the crowd")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="handshakes in flight in total while connecting",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput case")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="connect/disconnect rounds in all (the later ones only watch RSS and registries)",
    )
    parser.add_argument(
        "--listen-backlog", type=int, help="engine listen_backlog (default: the engine's default)"
    )
    args = parser.parse_args()
    ensure_node_clients()
    n, procs = args.connections, args.procs
    nofile = raise_fd_limit(max(NOFILE, n * 2 + 1024))
    if nofile < n + 1024:
        sys.exit(f"open-file limit {nofile} is too low for {n} connections (run as root?)")
    failures: list[str] = []
    rows: list[tuple[str, str]] = []
    tput: list[tuple[str, dict[str, Any]]] = []

    text = f"modules: []\nmax_connections: {n + 100}\n"
    if args.listen_backlog is not None:
        text += f"listen_backlog: {args.listen_backlog}\n"
    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    engine_args = engine_command(text, port)
    with process(text=True, args=engine_args) as engine:
        wait_port(port, engine)
        rss_idle = rss_kib(engine.pid)["VmRSS"]
        with process(
            text=True,
            args=node("clients.mjs", "callee", url, BUSY_FUNCTION),
            stdout=subprocess.PIPE,
        ) as callee:
            assert callee.stdout is not None
            if callee.stdout.readline().strip() != "ready":
                raise RuntimeError("busy callee did not start")
            busy = node(
                "clients.mjs", "caller", url, BUSY_FUNCTION, "1", "64", str(args.seconds), "1"
            )
            tput.append(("busy pair, 64 in flight, no crowd", run_caller(busy, args.seconds)))
            baseline = gauges(url)
            rss_before = rss_kib(engine.pid)["VmRSS"]

            share, extra = divmod(n, procs)
            lanes = max(1, args.concurrency // procs)
            crowd: list[subprocess.Popen[str]] = []
            with contextlib.ExitStack() as stack:
                tcp0 = tcp_counters()
                cpu0 = cpu_seconds(engine.pid)
                t0 = time.monotonic()
                first = 0
                for p in range(procs):
                    count = share + (1 if p < extra else 0)
                    crowd.append(
                        stack.enter_context(
                            process(
                                text=True,
                                args=node(
                                    "conn_clients.mjs",
                                    "crowd",
                                    url,
                                    str(first),
                                    str(count),
                                    str(lanes),
                                ),
                                stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE,
                            )
                        )
                    )
                    first += count
                reports = [read_json(proc, "crowd process") for proc in crowd]
                t_connected = time.monotonic() - t0
                tcp = {k: v - tcp0[k] for k, v in tcp_counters().items()}
                cpu_connect = cpu_seconds(engine.pid) - cpu0
                cpu_clients = sum(cpu_seconds(proc.pid) for proc in crowd)
                connected = sum(r["connected"] for r in reports)
                for r in reports:
                    if r["failed"]:
                        failures.append(f"{r['failed']} connections failed, e.g. {r['failures']}")
                want = {
                    "workers": baseline["workers"] + connected,
                    "functions": baseline["functions"] + connected,
                }
                _, got = wait_gauges(url, want, timeout=120)
                t_registered = time.monotonic() - t0
                if got != want:
                    failures.append(f"after connecting: engine reports {got}, expected {want}")
                time.sleep(1)  # let the last handshakes' garbage settle before reading RSS
                rss_with = rss_kib(engine.pid)["VmRSS"]

                tput.append(
                    (f"busy pair, 64 in flight, {connected} idle", run_caller(busy, args.seconds))
                )
                for inflight in (1, 64):
                    fan = node(
                        "conn_clients.mjs",
                        "caller",
                        url,
                        str(connected),
                        str(inflight),
                        str(args.seconds),
                        "1",
                    )
                    tput.append(
                        (
                            f"random crowd worker, {inflight} in flight",
                            run_caller(fan, args.seconds),
                        )
                    )

                for proc in crowd:
                    assert proc.stdin is not None
                    proc.stdin.write("status\n")
                    proc.stdin.flush()
                status = [read_json(proc, "crowd process") for proc in crowd]
                still_open = sum(s["open"] for s in status)
                dropped = sum(s["unexpectedCloses"] for s in status)
                if still_open != connected or dropped:
                    failures.append(
                        f"{connected - still_open} crowd sockets no longer open, "
                        f"{dropped} closed by the engine"
                    )

                t1 = time.monotonic()
                cpu1 = cpu_seconds(engine.pid)
                close_crowd(crowd)
                t_closed = time.monotonic() - t1
                _, got = wait_gauges(url, baseline, timeout=120)
                t_clean = time.monotonic() - t1
                cpu_clean = cpu_seconds(engine.pid) - cpu1
                if got != baseline:
                    failures.append(
                        f"after disconnecting: engine reports {got}, "
                        f"expected the baseline {baseline}"
                    )
            time.sleep(1)
            mem_after = rss_kib(engine.pid)
            rss_rounds = [mem_after["VmRSS"]]
            for _ in range(args.rounds - 1):
                again = crowd_round(url, n, procs, lanes)
                _, got_round = wait_gauges(url, baseline, timeout=120)
                if again != n or got_round != baseline:
                    failures.append(
                        f"later round: {again} connected, then engine reports {got_round}"
                    )
                time.sleep(1)
                rss_rounds.append(rss_kib(engine.pid)["VmRSS"])
        if engine.poll() is not None:
            failures.append(f"engine exited with {engine.returncode}")

    mib = 1024
    rows += [
        ("connections (Node processes)", f"{connected} of {n} ({procs})"),
        ("open-file limit (soft)", f"{nofile}"),
        ("engine listen_backlog", str(args.listen_backlog or "default")),
        ("time to connect all", f"{t_connected:.2f} s ({connected / t_connected:.0f} conn/s)"),
        (
            "engine CPU while connecting",
            f"{cpu_connect:.2f} s ({cpu_connect * 1000 / connected:.2f} ms per connection)",
        ),
        ("crowd clients' CPU while connecting", f"{cpu_clients:.2f} s"),
        ("time until all functions registered", f"{t_registered:.2f} s"),
        (
            "accept-queue overflows / SYN retransmits",
            f"{tcp['ListenOverflows']} / {tcp['TCPSynRetrans']} (host-wide, while connecting)",
        ),
        ("engine RSS idle / before crowd", f"{rss_idle / mib:.1f} / {rss_before / mib:.1f} MiB"),
        ("engine RSS with crowd", f"{rss_with / mib:.1f} MiB"),
        ("RSS per connection", f"{(rss_with - rss_before) / connected:.1f} KiB"),
        ("registries before / during / after", f"{baseline} / {want} / {got}"),
        ("time to close all (client side)", f"{t_closed:.2f} s"),
        ("time until registries at baseline", f"{t_clean:.2f} s"),
        (
            "engine CPU while disconnecting",
            f"{cpu_clean:.2f} s ({cpu_clean * 1000 / connected:.2f} ms per connection)",
        ),
        (
            "engine RSS after disconnect (peak)",
            f"{mem_after['VmRSS'] / mib:.1f} MiB ({mem_after['VmHWM'] / mib:.1f} MiB)",
        ),
    ]
    rows.append(
        (
            "engine RSS after each round",
            " / ".join(f"{r / mib:.1f}" for r in rss_rounds) + " MiB",
        )
    )
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print("-" * (width + 50))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print()
    width = max(len(k) for k, _ in tput)
    header = f"{'calls':<{width}}  {'calls/s':>9} {'p50 us':>8} {'p99 us':>8} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for name, r in tput:
        print(
            f"{name:<{width}}  {r['calls_per_s']:>9.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f} "
            f"{r.get('errors', 0):>6}"
        )
    print(
        f"\n{os.cpu_count()} CPUs; {args.seconds:.0f} s per call case after 1 s warm-up; "
        "clients: Node ws raw protocol"
    )
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
