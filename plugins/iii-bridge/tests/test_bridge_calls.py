"""``bridge.invoke``, ``bridge.invoke_async`` and forwards against a real remote engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bridging import bridge_of, local_engine, remote_engine, serve

from iii_core.testing import raw_worker, wait_until


async def add(data: Any) -> Any:
    return {"sum": data["a"] + data["b"]}


async def fail(data: Any) -> Any:
    raise ValueError("no such user")


async def test_invoke_returns_the_remote_result() -> None:
    async with remote_engine() as remote, raw_worker(remote) as server:
        await serve(server, remote, "math.add", add)
        await serve(server, remote, "users.get", fail)
        async with local_engine(remote.port) as local, raw_worker(local) as caller:
            call = {"function_id": "math.add", "data": {"a": 2, "b": 3}}
            assert await caller.call("bridge.invoke", call) == {"sum": 5}
            with pytest.raises(RuntimeError) as failed:
                await caller.call("bridge.invoke", {"function_id": "users.get", "data": {}})
            code, message = failed.value.args
            assert code == "bridge_error"
            assert "users.get" in message
            assert "invocation_failed: no such user" in message
            with pytest.raises(RuntimeError) as missing:
                await caller.call("bridge.invoke", {"function_id": "nope", "data": None})
            assert missing.value.args[0] == "bridge_error"
            assert "function_not_found" in missing.value.args[1]
            gauges = bridge_of(local).gauges()
            assert gauges == {
                "bridge_connected": 1,
                "bridge_calls_total": 3,
                "bridge_errors_total": 2,
            }


async def test_invoke_timeout_is_a_bridge_error() -> None:
    release = asyncio.Event()

    async def hang(data: Any) -> Any:
        await release.wait()
        return "late"

    async with remote_engine() as remote, raw_worker(remote) as server:
        await serve(server, remote, "slow", hang)
        async with local_engine(remote.port) as local, raw_worker(local) as caller:
            with pytest.raises(RuntimeError) as late:
                await caller.call("bridge.invoke", {"function_id": "slow", "timeout_ms": 200})
            assert late.value.args[0] == "bridge_error"
            assert "within 200 ms" in late.value.args[1]
            release.set()


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (None, "expected an object"),
        ([1], "expected an object"),
        ({"data": 1}, "missing field `function_id`"),
        ({"function_id": 7}, "`function_id` must be a non-empty string"),
        ({"function_id": "x", "timeout_ms": 0}, "`timeout_ms` must be a positive integer"),
        ({"function_id": "x", "timeout_ms": "5"}, "`timeout_ms` must be a positive integer"),
    ],
)
async def test_bad_input(data: Any, detail: str) -> None:
    async with (
        remote_engine() as remote,
        local_engine(remote.port) as local,
        raw_worker(local) as caller,
    ):
        reply = await caller.call_raw("bridge.invoke", data)
        assert reply["error"]["code"] == "deserialization_error"
        assert reply["error"]["message"].startswith("Failed to deserialize input for bridge")
        assert detail in reply["error"]["message"]


async def test_invoke_async_runs_the_remote_function() -> None:
    seen: list[Any] = []

    async def record(data: Any) -> None:
        seen.append(data)

    async with remote_engine() as remote, raw_worker(remote) as server:
        await serve(server, remote, "audit.log", record)
        async with local_engine(remote.port) as local, raw_worker(local) as caller:
            reply = await caller.call_raw(
                "bridge.invoke_async", {"function_id": "audit.log", "data": {"event": "login"}}
            )
            assert "error" not in reply and reply.get("result") is None
            await wait_until(lambda: len(seen) == 1, 5, "remote function ran")
            assert seen[0]["event"] == "login"


async def test_forward_entries_call_the_remote_function() -> None:
    release = asyncio.Event()

    async def hang(data: Any) -> Any:
        await release.wait()

    forward = [
        {"local_function": "calc.add", "remote_function": "math.add"},
        {"local_function": "calc.slow", "remote_function": "slow", "timeout_ms": 150},
        {"local_function": "calc.broken", "remote_function": "users.get"},
    ]
    async with remote_engine() as remote, raw_worker(remote) as server:
        await serve(server, remote, "math.add", add)
        await serve(server, remote, "slow", hang)
        await serve(server, remote, "users.get", fail)
        async with local_engine(remote.port, forward=forward) as local:
            async with raw_worker(local) as caller:
                assert await caller.call("calc.add", {"a": 1, "b": 41}) == {"sum": 42}
                assert await local.call("calc.add", {"a": 1, "b": 1}) == {"sum": 2}
                with pytest.raises(RuntimeError) as late:
                    await caller.call("calc.slow", {})
                assert late.value.args[0] == "bridge_error"
                assert "within 150 ms" in late.value.args[1]
                with pytest.raises(RuntimeError) as failed:
                    await caller.call("calc.broken", {})
                assert failed.value.args[0] == "bridge_error"
                assert "no such user" in failed.value.args[1]
            release.set()
