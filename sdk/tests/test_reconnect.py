"""Reconnects: engine restarts, clean closes, dropped TCP connections, replay of registrations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from iii_worker import ConnectionLostError, ConnectionState, InvocationStoppedError

from iii_core.testing import wait_until


class Webhooks:
    """A trigger-type provider that records the triggers it was asked to run."""

    def __init__(self) -> None:
        self.active: dict[str, Any] = {}

    def register_trigger(self, trigger: Any) -> None:
        self.active[trigger.id] = trigger.config

    def unregister_trigger(self, trigger: Any) -> None:
        self.active.pop(trigger.id, None)


async def test_engine_restart_on_the_same_port_replays_everything(
    engine_factory, sdk_worker
) -> None:
    async with engine_factory() as first:
        port = first.port
        provider = Webhooks()
        callee_cm = sdk_worker(first, name="callee")
        callee = await callee_cm.__aenter__()
        try:
            states: list[ConnectionState] = []
            callee.on_connection_state(states.append)
            callee.register_trigger_type("hook", "test hooks", provider)
            callee.register_function("r.echo", lambda data: {"echo": data})
            callee.register_trigger("hook", "r.echo", {"path": "/a"})
            await wait_until(lambda: len(provider.active) == 1, 5, "trigger started")
            old_id = callee.worker_id
            await first.stop()  # closes every worker socket with 1001
            await wait_until(lambda: not callee.connected, 5, "drop noticed")
            assert provider.active == {}  # stopped when the connection went away

            async with engine_factory(port=port) as second:
                await wait_until(lambda: callee.connected, 10, "reconnected")
                assert callee.worker_id != old_id
                await wait_until(
                    lambda: (
                        second.functions.get("r.echo") is not None
                        and second.trigger_types.get("hook") is not None
                        and len(list(second.triggers)) == 1
                    ),
                    5,
                    "replayed",
                )
                await wait_until(lambda: len(provider.active) == 1, 5, "trigger restarted")
                assert list(provider.active.values()) == [{"path": "/a"}]
                async with sdk_worker(second) as caller:
                    assert await caller.call("r.echo", 7) == {"echo": 7}
                # the worker itself calls again once reconnected
                assert await callee.call("r.echo", "self") == {"echo": "self"}
            assert ConnectionState.RECONNECTING in states
            assert states[-1] in (ConnectionState.RECONNECTING, ConnectionState.CONNECTING)
        finally:
            await callee_cm.__aexit__(None, None, None)


async def test_pending_calls_fail_at_once_when_the_connection_drops(
    engine_factory, sdk_worker, tcp_relay
) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as callee:
        started = asyncio.Event()

        async def hang(data: Any) -> None:
            started.set()
            await asyncio.sleep(60)

        callee.register_function("r.hang", hang)
        await wait_until(lambda: engine.functions.get("r.hang") is not None, 5, "registered")
        relay = await tcp_relay(engine.port)
        async with sdk_worker(relay.url) as caller:
            call = asyncio.ensure_future(caller.call("r.hang", {}, timeout=60))
            await asyncio.wait_for(started.wait(), 5)
            loop = asyncio.get_running_loop()
            cut_at = loop.time()
            relay.cut()  # no close frame: the engine cannot answer anything any more
            with pytest.raises(ConnectionLostError) as lost:
                await asyncio.wait_for(call, 10)
            assert loop.time() - cut_at < 5  # at once, not after the 60 s call timeout
            assert lost.value.code == "invocation_stopped"
            assert isinstance(lost.value, InvocationStoppedError)
            assert isinstance(lost.value, ConnectionError)
            # and it comes back through the relay, ready for calls
            await wait_until(lambda: caller.connected, 10, "reconnected through the relay")

            async def quick(data: Any) -> str:
                return "ok"

            callee.register_function("r.quick", quick)
            await wait_until(lambda: engine.functions.get("r.quick") is not None, 5, "registered")
            assert await caller.call("r.quick", {}) == "ok"


async def test_target_worker_dropping_gives_invocation_stopped(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as caller:
        started = asyncio.Event()

        async def hang(data: Any) -> None:
            started.set()
            await asyncio.sleep(60)

        async with sdk_worker(engine) as callee:
            callee.register_function("r.hang2", hang)
            await wait_until(lambda: engine.functions.get("r.hang2") is not None, 5, "registered")
            call = asyncio.ensure_future(caller.call("r.hang2", {}, timeout=60))
            await asyncio.wait_for(started.wait(), 5)
        with pytest.raises(InvocationStoppedError) as stopped:
            await asyncio.wait_for(call, 10)
        assert stopped.value.code == "invocation_stopped"
        assert not isinstance(stopped.value, ConnectionLostError)  # the engine said so


async def test_clean_close_1000_reconnects_and_flushes_queued_void_calls(
    engine_factory, sdk_worker
) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as receiver:
        got: list[Any] = []
        receiver.register_function("r.sink", got.append)
        await wait_until(lambda: engine.functions.get("r.sink") is not None, 5, "registered")
        async with sdk_worker(engine, name="closer") as worker:
            worker.register_function("r.mine", lambda data: "mine")
            await wait_until(lambda: engine.functions.get("r.mine") is not None, 5, "registered")
            old_id = worker.worker_id
            registered = engine.workers.get(old_id)
            assert registered is not None
            registered.conn.close(1000, "bye")  # a clean close from the engine side
            await wait_until(lambda: not worker.connected, 5, "close noticed")
            await worker.call_void("r.sink", {"queued": True})  # queued while offline
            await wait_until(lambda: worker.connected, 10, "reconnected after 1000")
            assert worker.worker_id != old_id
            expected = [{"queued": True, "_caller_worker_id": worker.worker_id}]
            await wait_until(lambda: got == expected, 5, "queued void call flushed")
            entry = engine.functions.get("r.mine")
            assert entry is not None
            assert await receiver.call("r.mine", {}) == "mine"
