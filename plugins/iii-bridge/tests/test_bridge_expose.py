"""``expose``: local functions served on the remote engine, across remote restarts."""

from __future__ import annotations

from typing import Any

import pytest
from bridging import bridge_of, local_engine, remote_engine, serve

from iii_core.testing import free_port, raw_worker, wait_until

EXPOSE = [
    {"local_function": "orders.get", "remote_function": "edge.orders.get"},
    {"local_function": "orders.broken"},
    {"local_function": "orders.missing"},
]


async def get_order(data: Any) -> Any:
    return {"id": data["id"], "caller_seen": "_caller_worker_id" in data}


async def broken(data: Any) -> Any:
    raise ValueError("database down")


async def test_remote_worker_calls_an_exposed_local_function() -> None:
    async with (
        remote_engine() as remote,
        local_engine(remote.port, expose=EXPOSE) as local,
        raw_worker(local) as provider,
        raw_worker(remote) as client,
    ):
        await serve(provider, local, "orders.get", get_order)
        await serve(provider, local, "orders.broken", broken)
        await wait_until(lambda: remote.functions.get("edge.orders.get") is not None)
        assert await client.call("edge.orders.get", {"id": 7}) == {
            "id": 7,
            "caller_seen": False,
        }
        with pytest.raises(RuntimeError) as failed:
            await client.call("orders.broken", {})
        assert failed.value.args == ("invocation_failed", "database down")
        with pytest.raises(RuntimeError) as missing:
            await client.call("orders.missing", {})
        assert missing.value.args[0] == "function_not_found"
        workers = await client.call("engine::workers::list", {})
        assert "iii-bridge" in [w.get("name") for w in workers["workers"]]


async def test_start_with_the_remote_engine_down_then_up() -> None:
    port = free_port()
    async with local_engine(port, connected=False, expose=EXPOSE) as local:
        bridge = bridge_of(local)
        async with raw_worker(local) as caller:
            with pytest.raises(RuntimeError) as down:
                await caller.call("bridge.invoke", {"function_id": "math.add"}, timeout=2)
            assert down.value.args[0] == "bridge_error"
            assert "not connected" in down.value.args[1]
            assert bridge.gauges()["bridge_connected"] == 0

            async with remote_engine(port) as remote, raw_worker(remote) as server:
                await serve(server, remote, "math.add", add_one)
                await wait_until(lambda: bridge.connection.connected, 5, "bridge connected")
                assert bridge.gauges()["bridge_connected"] == 1
                reply = await caller.call("bridge.invoke", {"function_id": "math.add", "data": 4})
                assert reply == 5
                await wait_until(lambda: remote.functions.get("edge.orders.get") is not None)


async def add_one(data: Any) -> Any:
    return data + 1


async def test_remote_restart_reconnects_and_registers_exposed_functions_again() -> None:
    async with remote_engine() as first:
        port = first.port
        async with local_engine(port, expose=EXPOSE) as local, raw_worker(local) as provider:
            await serve(provider, local, "orders.get", get_order)
            bridge = bridge_of(local)
            await wait_until(lambda: first.functions.get("edge.orders.get") is not None)
            await first.stop()
            await wait_until(lambda: not bridge.connection.connected, 5, "drop noticed")
            with pytest.raises(RuntimeError) as down:
                await provider.call("bridge.invoke", {"function_id": "x"})
            assert down.value.args[0] == "bridge_error"

            async with remote_engine(port) as second, raw_worker(second) as client:
                await wait_until(
                    lambda: second.functions.get("edge.orders.get") is not None, 5, "re-exposed"
                )
                assert await client.call("edge.orders.get", {"id": 1}) == {
                    "id": 1,
                    "caller_seen": False,
                }
                assert bridge.connection.connections == 2
