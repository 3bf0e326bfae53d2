"""The hostile-frame generators thrown at a live engine over real sockets.

One engine runs, on its own event loop in a thread, for the whole test, while two well-behaved
workers keep calling each other.  Each Hypothesis example connects two hostile workers that send
a batch of generated frames (as text and binary WebSocket frames), then leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from engine_checks import assert_consistent, bad_frame_logs, counts_as_protocol_error, is_bad_frame
from hostile_frames import GOOD_PREFIX, Frame, frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iii_core.engine import Engine
from iii_core.testing import RawWorker, running_engine, wait_until


class LiveEngine:
    """An engine plus two workers calling each other, on a loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()
        self.engine: Engine
        self.good: list[RawWorker] = []
        self.calls_ok = 0
        self.failures: list[str] = []
        self.stop = asyncio.Event()
        self.callers: list[asyncio.Future[None]] = []
        self.baseline: dict[str, int] = {}

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 90) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        self.engine = await self.stack.enter_async_context(running_engine())
        url = f"ws://127.0.0.1:{self.engine.port}/"
        for name in ("a", "b"):
            worker = await RawWorker(url).connect()
            self.stack.push_async_callback(worker.close)

            async def plus_one(data: Any) -> Any:
                return data["n"] + 1

            await worker.register_function(f"{GOOD_PREFIX}.{name}", plus_one)
            self.good.append(worker)
        await wait_until(
            lambda: all(self.engine.functions.get(f"{GOOD_PREFIX}.{n}") for n in "ab"),
            10,
            "good functions",
        )
        self.baseline = self.engine.gauges()
        a, b = self.good
        for caller, target in ((a, "b"), (b, "a")) * 2:
            self.callers.append(asyncio.ensure_future(self._keep_calling(caller, target)))

    async def _keep_calling(self, caller: RawWorker, target: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                got = await caller.call(f"{GOOD_PREFIX}.{target}", {"n": n}, timeout=30)
            except Exception as exc:
                self.failures.append(f"call {n} to {target}: {exc!r}")
                return
            if got != n + 1:
                self.failures.append(f"call {n} to {target}: got {got!r}")
            self.calls_ok += 1
            await asyncio.sleep(0.005)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.callers)
        await self.stack.aclose()
        # Server-side handler tasks aiohttp leaves behind when it stops: end them here, on
        # their own loop, before the loop is stopped.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveEngine]:
    live = LiveEngine()
    live.run(live.start())
    try:
        yield live
    finally:
        live.run(live.finish())
        live.loop.call_soon_threadsafe(live.loop.stop)
        live.thread.join(10)
        live.loop.close()


async def _hostile_round(live: LiveEngine, batch: list[Frame], round_id: int) -> list[str]:
    engine = live.engine
    url = f"ws://127.0.0.1:{engine.port}/"
    hostile = [await RawWorker(url).connect(), await RawWorker(url).connect()]
    before = engine.protocol_errors_total
    expected = 0
    for i, (kind, payload) in enumerate(batch):
        worker = hostile[i % 2]
        expected += counts_as_protocol_error(kind, payload)
        await worker.ws.send(payload, text=kind == "text")
    for worker in hostile:
        # Frames of one connection are handled in order: once this call is answered, every
        # frame sent before it has been handled.
        reply = await worker.call_raw(f"rel-sentinel-{round_id}", {}, timeout=60)
        assert reply["error"]["code"] == "function_not_found"
        assert worker.ws.close_code is None, "the engine closed a hostile worker"
    assert engine.protocol_errors_total - before == expected
    assert_consistent(engine)
    ids = [w.worker_id or "" for w in hostile]
    for worker in hostile:
        await worker.close()
    await wait_until(
        lambda: engine.gauges() == live.baseline or _tasks_only(engine.gauges(), live.baseline),
        20,
        "the engine's gauges to return to baseline",
    )
    return ids


def _tasks_only(now: dict[str, int], baseline: dict[str, int]) -> bool:
    """Equal except for fire-and-forget engine-event tasks still finishing."""
    return {**now, "tasks": 0} == {**baseline, "tasks": 0} and now["tasks"] <= baseline["tasks"] + 2


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(batch=st.lists(frames, min_size=5, max_size=40))
def test_hostile_frames_never_disturb_good_workers(
    live: LiveEngine, caplog: pytest.LogCaptureFixture, batch: list[Frame]
) -> None:
    caplog.set_level("WARNING", logger="iii.worker")
    live.round = getattr(live, "round", 0) + 1  # type: ignore[attr-defined]
    ids = live.run(_hostile_round(live, batch, live.round))  # type: ignore[attr-defined]
    assert not live.failures, live.failures
    halves = [batch[0::2], batch[1::2]]
    for worker_id, half in zip(ids, halves, strict=True):
        bad = any(is_bad_frame(kind, payload) for kind, payload in half)
        assert bad_frame_logs(caplog.records, worker_id) == (1 if bad else 0)
    assert live.engine.workers.active_count() == 2


def test_good_workers_kept_calling(live: LiveEngine) -> None:
    """Runs after the fuzzing (same module fixture): every good call succeeded, many were made."""
    assert not live.failures, live.failures
    assert live.calls_ok > 50
