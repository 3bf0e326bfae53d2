"""Faults and soak: workers SIGKILLed under load, connect/disconnect churn, many invocations,
SIGTERM of the ``iii`` process while calls are in flight.

Sizes are bounded by default; ``III_SOAK=1`` runs the full sizes of the issue (1 000 cycles,
100 000 invocations).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from iii_core.testing import RawWorker, connect_when_ready, free_port, raw_worker, wait_until

SOAK = os.environ.get("III_SOAK") == "1"
WORKERS = Path(__file__).resolve().parent / "workers"
CALL_TIMEOUT_MS = 3000
KNOWN_ERRORS = {"invocation_stopped", "function_not_found", "timeout"}


def _spawn_load_worker(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKERS / "load_worker.py"), url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _settled(engine: Any, baseline: dict[str, int], timeout: float = 20) -> None:
    await wait_until(
        lambda: engine.gauges() == baseline, timeout, f"gauges {baseline} (now {engine.gauges()})"
    )


async def test_sigkilled_workers_under_load_every_call_ends(engine_factory: Any) -> None:
    async with engine_factory() as engine:
        url = f"ws://127.0.0.1:{engine.port}/"
        callers = [await RawWorker(url).connect() for _ in range(2)]
        await asyncio.sleep(0.1)
        baseline = engine.gauges()
        procs = [_spawn_load_worker(url) for _ in range(3)]
        outcomes: dict[str, int] = {}
        stop = asyncio.Event()

        async def load(caller: RawWorker) -> None:
            while not stop.is_set():
                started = time.monotonic()
                # The client waits well past the engine deadline: a hang shows up as TimeoutError.
                msg = await caller.call_raw(
                    "fault.echo",
                    {"x": 1},
                    timeout=CALL_TIMEOUT_MS / 1000 + 10,
                    timeout_ms=CALL_TIMEOUT_MS,
                )
                assert time.monotonic() - started < CALL_TIMEOUT_MS / 1000 + 5
                if "error" in msg:
                    assert msg["error"]["code"] in KNOWN_ERRORS, msg
                    key = msg["error"]["code"]
                else:
                    assert msg["result"]["x"] == 1
                    key = "ok"
                outcomes[key] = outcomes.get(key, 0) + 1
                if key != "ok":
                    await asyncio.sleep(0.02)

        try:
            await wait_until(
                lambda: engine.functions.get("fault.echo") is not None,
                30,
                "a load worker to register",
            )
            loads = [asyncio.ensure_future(load(c)) for c in callers for _ in range(4)]
            rng = random.Random(9)
            for _ in range(8 if not SOAK else 60):
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                victim = procs.pop(rng.randrange(len(procs)))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                procs.append(_spawn_load_worker(url))
            stop.set()
            await asyncio.wait_for(asyncio.gather(*loads), CALL_TIMEOUT_MS / 1000 + 20)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        assert outcomes.get("ok", 0) > 50, outcomes
        assert outcomes.get("invocation_stopped", 0) + outcomes.get("function_not_found", 0) > 0
        await _settled(engine, baseline)
        for caller in callers:
            assert await caller.call("engine::functions::list", {}) is not None
            await caller.close()


@pytest.mark.slow
async def test_connect_disconnect_cycles_leave_no_growth(engine_factory: Any) -> None:
    cycles = 1000 if SOAK else 300
    async with engine_factory() as engine, raw_worker(engine):
        await asyncio.sleep(0.1)
        baseline = engine.gauges()

        async def cycle(i: int) -> None:
            w = await RawWorker(f"ws://127.0.0.1:{engine.port}/").connect()
            await w.register_function(f"churn.fn{i}", _echo)
            await w.register_trigger("engine::workers-available", f"churn.fn{i}", {})
            await w.send({"type": "registertriggertype", "id": f"churn.type{i}"})
            await w.send({"type": "registerservice", "id": f"churn.svc{i}"})
            # A call left pending when the worker leaves, and one it answers.
            await w.send(
                {
                    "type": "invokefunction",
                    "invocation_id": "p",
                    "function_id": "churn.nobody-answers",
                    "data": {},
                }
            )
            # Frames of one connection are handled in order: the function is registered.
            assert await w.call(f"churn.fn{i}", {"i": i}) == {"i": i}
            await w.close()

        sem = asyncio.Semaphore(10)

        async def limited(i: int) -> None:
            async with sem:
                await cycle(i)

        await asyncio.gather(*(limited(i) for i in range(cycles)))
        await _settled(engine, baseline)
        assert engine.workers.spawns_total >= cycles


async def _echo(data: Any) -> Any:
    return {k: v for k, v in data.items() if k != "_caller_worker_id"}


@pytest.mark.slow
async def test_many_invocations_leave_no_growth(engine_factory: Any) -> None:
    total = 100_000 if SOAK else 20_000
    async with (
        engine_factory() as engine,
        raw_worker(engine) as server,
        raw_worker(engine) as client,
    ):

        async def plus_one(data: Any) -> Any:
            return data["n"] + 1

        await server.register_function("soak.plus", plus_one)
        await wait_until(lambda: engine.functions.get("soak.plus") is not None)
        await asyncio.sleep(0.1)
        baseline = engine.gauges()
        completed = engine.router.completed_total
        peak_pending = peak_tasks = 0
        batch = 500
        for start in range(0, total, batch):
            results = await asyncio.gather(
                *(
                    client.call("soak.plus", {"n": n}, timeout=60)
                    for n in range(start, start + batch)
                )
            )
            assert results == [n + 1 for n in range(start, start + batch)]
            gauges = engine.gauges()
            peak_pending = max(peak_pending, gauges["pending_invocations"])
            peak_tasks = max(peak_tasks, gauges["tasks"])
        assert engine.router.completed_total - completed == total
        assert peak_pending <= batch
        assert peak_tasks <= baseline["tasks"] + 2
        await _settled(engine, baseline)


async def test_sigterm_lets_inflight_calls_finish_and_stops_the_rest(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"port: {port}\nshutdown_grace_ms: 3000\nmodules: []\n")
    log_file = tmp_path / "iii.log"
    with log_file.open("w") as out:
        # The engine under test is a child process; Popen returns at once.
        proc = subprocess.Popen(["iii", "-c", str(config)], stdout=out, stderr=out)
    try:
        url = f"ws://127.0.0.1:{port}/"
        server = await connect_when_ready(url)
        client = await RawWorker(url).connect()

        async def slow(data: Any) -> Any:
            await asyncio.sleep(data["s"])
            return "done"

        await server.register_function("term.slow", slow)
        await server.register_function("term.stuck", slow)
        await asyncio.sleep(0.3)
        finishing = [
            asyncio.ensure_future(client.call_raw("term.slow", {"s": 1.0}, timeout=30))
            for _ in range(20)
        ]
        stuck = [
            asyncio.ensure_future(client.call_raw("term.stuck", {"s": 60}, timeout=30))
            for _ in range(5)
        ]
        await asyncio.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for reply in await asyncio.gather(*finishing):
            assert reply.get("result") == "done", reply
        for reply in await asyncio.gather(*stuck):
            assert reply["error"]["code"] == "invocation_stopped", reply
        stopped_after = time.monotonic() - sent
        assert 2.5 < stopped_after < 15, stopped_after
        assert await asyncio.to_thread(proc.wait, 20) == 0
        output = log_file.read_text()
        assert "still pending after the grace period" in output, output[-2000:]
        for w in (server, client):
            await w.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
