"""The engine on real sockets with bare protocol clients: routing, errors, cleanup."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from iii_core.testing import raw_worker, wait_until


async def test_cross_worker_call_injects_caller_id(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        seen: list[Any] = []

        async def add(data: Any) -> Any:
            seen.append(data)
            return {"sum": data["a"] + data["b"]}

        await b.register_function("demo.add", add)
        await wait_until(lambda: engine.functions.get("demo.add") is not None)
        assert await a.call("demo.add", {"a": 2, "b": 3}) == {"sum": 5}
        assert seen == [{"a": 2, "b": 3, "_caller_worker_id": a.worker_id}]


async def test_same_worker_call(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a:

        async def echo(data: Any) -> Any:
            return data["x"]

        await a.register_function("self.echo", echo)
        await wait_until(lambda: engine.functions.get("self.echo") is not None)
        assert await a.call("self.echo", {"x": [1, 2]}) == [1, 2]


async def test_unknown_function_answers_at_once(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a:
        msg = await a.call_raw("does.not.exist", {}, timeout=2)
        assert msg["error"] == {
            "code": "function_not_found",
            "message": "Function does.not.exist not found",
        }


async def test_null_result_leaves_result_out(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a, raw_worker(engine) as b:

        async def nothing(data: Any) -> Any:
            return None

        await b.register_function("demo.nothing", nothing)
        await wait_until(lambda: engine.functions.get("demo.nothing") is not None)
        msg = await a.call_raw("demo.nothing", {})
        assert "result" not in msg and "error" not in msg


async def test_handler_error_relayed_with_stacktrace(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        await b.send({"type": "registerfunction", "id": "demo.fail"})
        await wait_until(lambda: engine.functions.get("demo.fail") is not None)
        call = asyncio.create_task(a.call_raw("demo.fail", {}))
        invoke = await asyncio.wait_for(b.inbox.get(), 5)
        await b.send(
            {
                "type": "invocationresult",
                "invocation_id": invoke["invocation_id"],
                "function_id": "demo.fail",
                "error": {"code": "invocation_failed", "message": "boom", "stacktrace": "tb"},
            }
        )
        msg = await call
        assert msg["error"]["code"] == "invocation_failed"
        assert msg["error"]["message"] == "boom"


async def test_fire_and_forget_and_void(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        got: list[Any] = []

        async def sink(data: Any) -> Any:
            got.append(data["n"])
            return {"ignored": True}

        await b.register_function("demo.sink", sink)
        await wait_until(lambda: engine.functions.get("demo.sink") is not None)
        await a.call_void("demo.sink", {"n": 1})
        await a.send(
            {
                "type": "invokefunction",
                "function_id": "demo.sink",
                "data": {"n": 2},
                "action": {"type": "void"},
            }
        )
        await wait_until(lambda: sorted(got) == [1, 2])
        await wait_until(lambda: not engine.router.pending)
        await asyncio.sleep(0.1)
        assert a.inbox.empty()  # nothing is sent back for fire-and-forget calls


async def test_disconnect_mid_call_stops_invocation(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a:
        async with raw_worker(engine) as b:
            await b.send({"type": "registerfunction", "id": "demo.slow"})
            await wait_until(lambda: engine.functions.get("demo.slow") is not None)
            call = asyncio.create_task(a.call_raw("demo.slow", {}, timeout=10))
            await asyncio.wait_for(b.inbox.get(), 5)
        msg = await asyncio.wait_for(call, 5)
        assert msg["error"] == {"code": "invocation_stopped", "message": "Invocation stopped"}
        assert engine.functions.get("demo.slow") is None
        assert not engine.router.pending


async def test_caller_disconnect_drops_its_pending_calls(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as b:
        await b.send({"type": "registerfunction", "id": "demo.slow"})
        await wait_until(lambda: engine.functions.get("demo.slow") is not None)
        async with raw_worker(engine) as a:
            await a.send(
                {
                    "type": "invokefunction",
                    "invocation_id": str(uuid.uuid4()),
                    "function_id": "demo.slow",
                    "data": {},
                }
            )
            await asyncio.wait_for(b.inbox.get(), 5)
            assert len(engine.router.pending) == 1
        await wait_until(lambda: not engine.router.pending, what="pending call dropped")


@pytest.mark.parametrize("where", ["message", "metadata", "config"])
async def test_deadline_only_when_asked(engine_factory: Any, where: str) -> None:
    overrides = {"invocation_timeout_ms": 200} if where == "config" else {}
    async with (
        engine_factory(**overrides) as engine,
        raw_worker(engine) as a,
        raw_worker(engine) as b,
    ):
        fields = {"metadata": {"timeout_ms": 200}} if where == "metadata" else {}
        await b.send({"type": "registerfunction", "id": "demo.hang", **fields})
        await wait_until(lambda: engine.functions.get("demo.hang") is not None)
        extra = {"timeout_ms": 200} if where == "message" else {}
        msg = await a.call_raw("demo.hang", {}, timeout=5, **extra)
        assert msg["error"]["code"] == "timeout"
        invoke = await asyncio.wait_for(b.inbox.get(), 5)
        # A late result is dropped quietly.
        await b.send(
            {
                "type": "invocationresult",
                "invocation_id": invoke["invocation_id"],
                "function_id": "demo.hang",
                "result": 1,
            }
        )
        await asyncio.sleep(0.1)
        assert a.inbox.empty()
        assert not engine.router.pending


async def test_no_deadline_by_default(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        await b.send({"type": "registerfunction", "id": "demo.hang"})
        await wait_until(lambda: engine.functions.get("demo.hang") is not None)
        call = asyncio.create_task(a.call_raw("demo.hang", {}, timeout=10))
        invoke = await asyncio.wait_for(b.inbox.get(), 5)
        await asyncio.sleep(0.5)
        assert not call.done()
        await b.send(
            {
                "type": "invocationresult",
                "invocation_id": invoke["invocation_id"],
                "function_id": "demo.hang",
                "result": "late but fine",
            }
        )
        assert (await call)["result"] == "late but fine"


async def test_several_owners_share_the_load_and_leave_independently(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as caller:
        counts = {"b": 0, "c": 0}

        def handler(name: str) -> Any:
            async def run(data: Any) -> Any:
                counts[name] += 1
                return name

            return run

        async with raw_worker(engine) as b:
            await b.register_function("shared.fn", handler("b"))
            async with raw_worker(engine) as c:
                await c.register_function("shared.fn", handler("c"))
                await wait_until(lambda: len(engine.functions.get("shared.fn").owners) == 2)  # type: ignore[union-attr]
                await asyncio.gather(*(caller.call("shared.fn", {}) for _ in range(40)))
                assert counts["b"] >= 10 and counts["c"] >= 10
            # c left: b still serves the function.
            await wait_until(lambda: len(engine.functions.get("shared.fn").owners) == 1)  # type: ignore[union-attr]
            assert await caller.call("shared.fn", {}) == "b"
        await wait_until(lambda: engine.functions.get("shared.fn") is None)


async def test_pending_limit_per_worker(engine_factory: Any) -> None:
    async with (
        engine_factory(max_pending_per_worker=3) as engine,
        raw_worker(engine) as a,
        raw_worker(engine) as b,
    ):
        await b.send({"type": "registerfunction", "id": "demo.hang"})
        await wait_until(lambda: engine.functions.get("demo.hang") is not None)
        calls = [asyncio.create_task(a.call_raw("demo.hang", {}, timeout=5)) for _ in range(3)]
        await wait_until(lambda: len(engine.router.pending) == 3)
        msg = await a.call_raw("demo.hang", {}, timeout=5)
        assert msg["error"]["code"] == "too_many_invocations"
        for task in calls:
            task.cancel()


async def test_invalid_invoke_with_id_gets_invalid_message(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a:
        await a.send({"type": "invokefunction", "invocation_id": "abc", "data": {}})
        msg = await asyncio.wait_for(a.inbox.get(), 5)
        assert msg["type"] == "invocationresult"
        assert msg["invocation_id"] == "abc"
        assert msg["error"]["code"] == "invalid_message"
        assert engine.protocol_errors_total == 1


async def test_ping_pong_and_unknown_types_tolerated(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a:
        await a.send({"type": "brand-new-message", "x": 1})
        await a.send({"type": "reattach", "previous_worker_id": "x"})
        await a.send({"type": "ping"})
        assert await asyncio.wait_for(a.inbox.get(), 5) == {"type": "pong"}


async def test_binary_frames_json_and_telemetry(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as a:
        await a.send(b"OTLP" + json.dumps({"resourceSpans": []}).encode())
        await a.send(b"MTRC{}")
        await a.send(b"LOGS{}")
        await a.send(json.dumps({"type": "ping"}).encode())  # binary JSON message
        assert await asyncio.wait_for(a.inbox.get(), 5) == {"type": "pong"}
        assert engine.protocol_errors_total == 0


async def test_telemetry_socket_is_not_an_active_worker(engine_factory: Any) -> None:
    async with (
        engine_factory() as engine,
        raw_worker(engine) as a,
        raw_worker(engine, path="/otel") as t,
        raw_worker(engine) as legacy,
    ):
        await legacy.send(b"OTLP{}")
        await wait_until(lambda: engine.workers.active_count() == 1)
        workers = (await a.call("engine::workers::list", {}))["workers"]
        assert [w["id"] for w in workers] == [a.worker_id]
        del t


async def test_only_the_target_may_answer_a_call(engine_factory: Any) -> None:
    async with (
        engine_factory() as engine,
        raw_worker(engine) as a,
        raw_worker(engine) as b,
        raw_worker(engine) as intruder,
    ):
        await b.send({"type": "registerfunction", "id": "demo.slow"})
        await wait_until(lambda: engine.functions.get("demo.slow") is not None)
        call = asyncio.create_task(a.call_raw("demo.slow", {}))
        invoke = await asyncio.wait_for(b.inbox.get(), 5)
        forged = {
            "type": "invocationresult",
            "invocation_id": invoke["invocation_id"],
            "function_id": "demo.slow",
            "result": "forged",
        }
        await intruder.send(forged)
        await asyncio.sleep(0.1)
        assert not call.done()
        await b.send({**forged, "result": "real"})
        assert (await call)["result"] == "real"


async def test_shutdown_grace_covers_calls_to_in_process_functions(engine_factory: Any) -> None:
    """A worker's call to a module function runs on through the grace period; one that outlasts
    it is answered ``invocation_stopped`` before the engine closes the connection."""
    async with engine_factory(shutdown_grace_ms=1500) as engine, raw_worker(engine) as w:

        async def slow(data: Any, ctx: Any) -> Any:
            await asyncio.sleep(data["s"])
            return "done"

        engine.register_function("module.slow", slow)
        quick = asyncio.ensure_future(w.call_raw("module.slow", {"s": 0.5}, 10))
        stuck = asyncio.ensure_future(w.call_raw("module.slow", {"s": 60}, 10))
        await wait_until(lambda: len(engine.router.module_calls) == 2, 5, "both calls running")
        started = asyncio.get_running_loop().time()
        await engine.stop()
        assert 1.4 < asyncio.get_running_loop().time() - started < 5
        assert (await quick)["result"] == "done"
        assert (await stuck)["error"]["code"] == "invocation_stopped"
        assert not engine.router.module_calls
