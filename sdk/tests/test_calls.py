"""Functions and calls across two SDK workers through a real engine."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import iii_worker
import pytest
from iii_worker import (
    ConnectionState,
    FunctionNotFoundError,
    InvocationContext,
    InvocationError,
    InvocationFailedError,
    InvocationTimeoutError,
    NotConnectedError,
)

from iii_core.testing import raw_worker, wait_until


async def test_call_across_workers_sync_and_async_handlers(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine, name="callee") as callee:
        threads: list[str] = []

        async def add(data: dict[str, int]) -> dict[str, int]:
            return {"sum": data["a"] + data["b"]}

        def mul(data: dict[str, int]) -> dict[str, int]:
            threads.append(threading.current_thread().name)
            return {"product": data["a"] * data["b"]}

        callee.register_function("math.add", add, description="adds")
        callee.register_function("math.mul", mul)
        await wait_until(lambda: engine.functions.get("math.mul") is not None, 5, "registered")
        async with sdk_worker(engine, name="caller") as caller:
            assert await caller.call("math.add", {"a": 2, "b": 3}) == {"sum": 5}
            assert await caller.call("math.mul", {"a": 4, "b": 5}) == {"product": 20}
            results = await asyncio.gather(
                *(caller.call("math.add", {"a": i, "b": i}) for i in range(50))
            )
            assert [r["sum"] for r in results] == [2 * i for i in range(50)]
        assert threads and threads[0] != threading.main_thread().name
        entry = engine.functions.get("math.add")
        assert entry is not None and entry.info()["description"] == "adds"


async def test_errors_are_typed(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as worker:

        def fail(data: Any) -> None:
            raise ValueError("boom: bad input")

        async def custom(data: Any) -> None:
            raise InvocationError("no such user", code="user_not_found")

        async def slow(data: Any) -> str:
            await asyncio.sleep(5)
            return "late"

        worker.register_function("t.fail", fail)
        worker.register_function("t.custom", custom)
        worker.register_function("t.slow", slow)
        await wait_until(lambda: engine.functions.get("t.slow") is not None, 5, "registered")

        with pytest.raises(FunctionNotFoundError) as nf:
            await worker.call("does.not.exist", {})
        assert nf.value.code == "function_not_found"
        assert "does.not.exist" in nf.value.message

        with pytest.raises(InvocationFailedError) as failed:
            await worker.call("t.fail", {"x": 1})
        assert failed.value.code == "invocation_failed"
        assert failed.value.message == "boom: bad input"
        assert failed.value.stacktrace and "ValueError" in failed.value.stacktrace

        with pytest.raises(InvocationError) as custom_err:
            await worker.call("t.custom", {})
        assert type(custom_err.value) is InvocationError
        assert custom_err.value.code == "user_not_found"

        with pytest.raises(InvocationTimeoutError) as timed_out:
            await worker.call("t.slow", {}, timeout=0.3)
        assert timed_out.value.code == "timeout"
        assert isinstance(timed_out.value, TimeoutError)


async def test_fire_and_forget_and_context(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as callee:
        seen: list[tuple[Any, InvocationContext]] = []

        def record(data: Any, ctx: InvocationContext) -> None:
            seen.append((data, ctx))

        callee.register_function("t.record", record)
        await wait_until(lambda: engine.functions.get("t.record") is not None, 5, "registered")
        async with sdk_worker(engine) as caller:
            assert await caller.call_void("t.record", {"n": 1}, metadata={"tenant": "t1"}) is None
            await wait_until(lambda: len(seen) == 1, 5, "void call delivered")
        data, ctx = seen[0]
        assert data["n"] == 1
        assert ctx.function_id == "t.record"
        assert ctx.invocation_id  # the engine always fills one in
        assert ctx.metadata == {"tenant": "t1"}


async def test_decorator_unregister_and_local_duplicates(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as worker:

        @worker.function("t.echo", description="echo")
        async def echo(data: Any) -> Any:
            return data

        ref = worker.register_function("t.temp", echo)
        with pytest.raises(ValueError, match="already registered"):
            worker.register_function("t.temp", echo)
        with pytest.raises(ValueError, match="blank"):
            worker.register_function(" ", echo)
        await wait_until(lambda: engine.functions.get("t.temp") is not None, 5, "registered")
        assert await worker.call("t.echo", [1, "two", None]) == [1, "two", None]
        ref.unregister()
        await wait_until(lambda: engine.functions.get("t.temp") is None, 5, "unregistered")
        with pytest.raises(FunctionNotFoundError):
            await worker.call("t.temp", {})
        listed = {f["function_id"] for f in await worker.list_functions()}
        assert "t.echo" in listed and "t.temp" not in listed


async def test_worker_metadata_and_states(engine_factory) -> None:
    async with engine_factory() as engine:
        worker = iii_worker.init(f"ws://127.0.0.1:{engine.port}", name="meta-worker")
        states: list[ConnectionState] = []
        worker.on_connection_state(states.append)
        await worker.connect()
        try:
            await wait_until(
                lambda: any(w.name == "meta-worker" for w in engine.workers), 5, "metadata"
            )
            registered = next(w for w in engine.workers if w.name == "meta-worker")
            assert registered.id == worker.worker_id
            assert registered.runtime == "python"
            assert registered.version == iii_worker.__version__
            assert registered.pid == os.getpid()
            workers = await worker.list_workers()
            assert any(w["name"] == "meta-worker" for w in workers)
        finally:
            await worker.close()
        assert states == [
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
            ConnectionState.DISCONNECTED,
        ]
        with pytest.raises(NotConnectedError):
            await worker.call("anything", {})


async def test_connect_failure_is_reported(sdk_worker) -> None:
    from iii_core.testing import free_port

    worker = iii_worker.connect(
        f"ws://127.0.0.1:{free_port()}",
        reconnect=iii_worker.ReconnectConfig(initial_delay=0.01, max_retries=2),
    )
    states: list[ConnectionState] = []
    worker.on_connection_state(states.append)
    with pytest.raises(NotConnectedError):
        await worker.connect(timeout=10)
    assert ConnectionState.FAILED in states


async def test_raw_protocol_frames(engine_factory, sdk_worker) -> None:
    """What the SDK puts on the wire, seen by a bare protocol client acting as the callee."""
    async with engine_factory() as engine, raw_worker(engine) as raw:
        frames: list[Any] = []

        async def capture(data: Any) -> Any:
            frames.append(data)
            return {"ok": True}

        await raw.register_function("raw.capture", capture)
        await wait_until(lambda: engine.functions.get("raw.capture") is not None, 5, "registered")
        async with sdk_worker(engine) as worker:
            assert await worker.call("raw.capture", {"k": "v"}) == {"ok": True}
            assert await worker.call("raw.capture", "plain") == {"ok": True}
        assert frames[0]["k"] == "v" and "_caller_worker_id" in frames[0]
        assert frames[1] == "plain"
