"""Trigger types, triggers, engine functions and engine events over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from iii_core.testing import raw_worker, wait_until


async def _next(worker: Any, kind: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(worker.inbox.get(), timeout)
        if msg.get("type") == kind:
            return msg


async def test_trigger_waits_for_its_type_then_is_forwarded(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as user:
        await user.send({"type": "registerfunction", "id": "demo.on_webhook"})
        trigger_id = await user.register_trigger(
            "demo-webhook", "demo.on_webhook", {"path": "/hook"}
        )
        await wait_until(lambda: engine.triggers.get(trigger_id) is not None)
        listed = await user.call("engine::triggers::list", {})
        assert listed["triggers"][0]["status"] == "pending"
        async with raw_worker(engine) as provider:
            await provider.send(
                {"type": "registertriggertype", "id": "demo-webhook", "description": "d"}
            )
            forwarded = await _next(provider, "registertrigger")
            assert forwarded == {
                "type": "registertrigger",
                "id": trigger_id,
                "trigger_type": "demo-webhook",
                "function_id": "demo.on_webhook",
                "config": {"path": "/hook"},
            }
            await user.send(
                {"type": "unregistertrigger", "id": trigger_id, "trigger_type": "demo-webhook"}
            )
            removed = await _next(provider, "unregistertrigger")
            assert removed == {
                "type": "unregistertrigger",
                "id": trigger_id,
                "trigger_type": "demo-webhook",
            }
        assert engine.triggers.get(trigger_id) is None


async def test_provider_reconnect_gets_existing_triggers_again(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as user:
        async with raw_worker(engine) as provider:
            await provider.send({"type": "registertriggertype", "id": "t", "description": ""})
            await wait_until(lambda: engine.trigger_types.get("t") is not None)
            trigger_id = await user.register_trigger("t", "f", {"n": 1})
            await _next(provider, "registertrigger")
        await wait_until(lambda: engine.trigger_types.get("t") is None)
        assert engine.triggers.get(trigger_id) is not None  # kept, pending
        async with raw_worker(engine) as provider2:
            await provider2.send({"type": "registertriggertype", "id": "t", "description": ""})
            again = await _next(provider2, "registertrigger")
            assert again["id"] == trigger_id


async def test_trigger_of_disconnected_worker_is_unregistered(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as provider:
        await provider.send({"type": "registertriggertype", "id": "t", "description": ""})
        await wait_until(lambda: engine.trigger_types.get("t") is not None)
        async with raw_worker(engine) as user:
            trigger_id = await user.register_trigger("t", "f", {})
            await _next(provider, "registertrigger")
        gone = await _next(provider, "unregistertrigger")
        assert gone["id"] == trigger_id
        assert engine.triggers.get(trigger_id) is None


async def test_module_registrator_rejection_reaches_the_worker(engine_factory: Any) -> None:
    class Picky:
        async def register_trigger(self, trigger: Any) -> None:
            if "path" not in trigger.config:
                raise ValueError("config.path is required")

        async def unregister_trigger(self, trigger: Any) -> None:
            return None

    async with engine_factory() as engine, raw_worker(engine) as user:
        await engine.register_trigger_type("picky", "rejects bad configs", Picky())
        trigger_id = await user.register_trigger("picky", "f", {"nope": 1})
        result = await _next(user, "triggerregistrationresult")
        assert result["id"] == trigger_id
        assert result["error"]["code"] == "trigger_registration_failed"
        assert "config.path is required" in result["error"]["message"]
        assert engine.triggers.get(trigger_id) is None


async def test_functions_available_is_pushed_on_change(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as watcher:
        events: list[Any] = []

        async def on_change(data: Any) -> None:
            events.append(data)

        await watcher.register_function("watch.functions", on_change)
        await watcher.register_trigger("engine::functions-available", "watch.functions", None)
        async with raw_worker(engine) as other:
            await other.send({"type": "registerfunction", "id": "new.fn"})
            await wait_until(
                lambda: any(
                    any(f["function_id"] == "new.fn" for f in e["functions"]) for e in events
                ),
                what="functions_changed with new.fn",
            )
        assert events[-1]["event"] == "functions_changed"


async def test_workers_available_and_register(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as watcher:
        events: list[Any] = []

        async def on_worker(data: Any) -> None:
            events.append(data)

        await watcher.register_function("watch.workers", on_worker)
        await watcher.register_trigger("engine::workers-available", "watch.workers", {})
        await wait_until(lambda: len(engine.triggers) == 1)
        async with raw_worker(engine) as w:
            await w.call_void(
                "engine::workers::register",
                {"runtime": "python", "version": "1.0", "name": "w1", "os": "Linux", "pid": 42},
            )
            await wait_until(lambda: engine.workers.get(w.worker_id).name == "w1")  # type: ignore[union-attr]
            info = (await watcher.call("engine::workers::list", {"worker_id": w.worker_id}))[
                "workers"
            ][0]
            assert info["name"] == "w1" and info["runtime"] == "python" and info["pid"] == 42

        def kinds() -> list[tuple[str, str]]:
            return [(e["event"], e["worker_id"]) for e in events]

        await wait_until(lambda: ("worker_disconnected", w.worker_id) in kinds())
        assert ("worker_connected", w.worker_id) in kinds()
        assert ("worker_metadata_updated", w.worker_id) in kinds()


async def test_engine_functions_validate_input(engine_factory: Any) -> None:
    async with engine_factory() as engine, raw_worker(engine) as w:
        msg = await w.call_raw("engine::functions::list", None)
        assert msg["error"]["code"] == "deserialization_error"
        listed = await w.call("engine::functions::list", {"include_internal": True})
        ids = {f["function_id"] for f in listed["functions"]}
        assert "engine::channels::create" in ids
        assert (await w.call("engine::functions::list", {}))["functions"] == []


async def test_data_channel_round_trip(engine_factory: Any) -> None:
    import websockets

    async with engine_factory() as engine, raw_worker(engine) as w:
        refs = await w.call("engine::channels::create", {"buffer_size": None})
        writer, reader = refs["writer"], refs["reader"]
        assert writer["channel_id"] == reader["channel_id"]
        assert (writer["direction"], reader["direction"]) == ("write", "read")
        base = f"ws://127.0.0.1:{engine.port}/ws/channels/{writer['channel_id']}"
        async with websockets.connect(f"{base}?key={writer['access_key']}&dir=write") as ws_w:
            await ws_w.send("hello over channel")
            await ws_w.send(b"\x00\x01binary")
        async with websockets.connect(f"{base}?key={reader['access_key']}&dir=read") as ws_r:
            assert await ws_r.recv() == "hello over channel"
            assert await ws_r.recv() == b"\x00\x01binary"
            await asyncio.wait_for(ws_r.wait_closed(), 5)


async def test_data_channel_http_errors(engine_factory: Any) -> None:
    import httpx

    async with engine_factory() as engine, raw_worker(engine) as w:
        refs = await w.call("engine::channels::create", {})
        cid = refs["writer"]["channel_id"]
        base = f"http://127.0.0.1:{engine.port}/ws/channels/{cid}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}?dir=write")).status_code == 400
            assert (await client.get(f"{base}?key=x&dir=sideways")).status_code == 400
            r = await client.get(f"{base}?key=wrong&dir=write")
            assert r.status_code == 404 and r.text == "Channel not found"


async def test_a_module_failing_to_initialise_shuts_down_the_others() -> None:
    import pytest

    from iii_core.engine import Engine
    from iii_core.module import Module
    from iii_core.testing import make_config

    events: list[str] = []

    class Good(Module):
        async def initialize(self) -> None:
            events.append("good up")

        async def shutdown(self) -> None:
            events.append("good down")

    class Bad(Module):
        async def initialize(self) -> None:
            raise RuntimeError("cannot bind")

        async def shutdown(self) -> None:
            events.append("bad down")

    engine = Engine(make_config())
    engine.plugins.load()
    original = engine.plugins.create_module

    def create(entry: Any, eng: Engine) -> Module:
        if entry.class_name == "test::Good":
            return Good(eng, None)
        if entry.class_name == "test::Bad":
            return Bad(eng, None)
        return original(entry, eng)

    engine.plugins.create_module = create  # type: ignore[method-assign]
    from iii_core.config import ModuleEntry

    engine.config = make_config(modules=[ModuleEntry("test::Good"), ModuleEntry("test::Bad")])
    with pytest.raises(RuntimeError, match="cannot bind"):
        await engine.start()
    assert events == ["good up", "bad down", "good down"]
