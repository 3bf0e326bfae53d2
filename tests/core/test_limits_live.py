"""Limits and hostile peers: one bad worker never disturbs another worker's calls."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
import websockets

from iii_core.testing import raw_worker, wait_until


async def test_bad_frames_and_flood_do_not_disturb_good_workers(engine_factory: Any) -> None:
    async with (
        engine_factory() as engine,
        raw_worker(engine) as good_a,
        raw_worker(engine) as good_b,
        raw_worker(engine) as bad,
    ):

        async def echo(data: Any) -> Any:
            return data["n"]

        await good_b.register_function("good.echo", echo)
        await wait_until(lambda: engine.functions.get("good.echo") is not None)

        async def hostile() -> None:
            frames: list[Any] = [
                "{",
                "[]",
                "null",
                '{"type": 5}',
                '{"type":"invokefunction"}',
                '{"type":"registerfunction","id":7}',
                b"\xff\xfe\x00",
                b"OTLPnot-json",
                '{"type":"invocationresult","invocation_id":"nope","function_id":"x"}',
                json.dumps({"type": "invokefunction", "function_id": "x", "data": "a" * 100_000}),
                json.dumps({"type": "registertrigger", "id": "t"}),
                "[" * 5000 + "]" * 5000,
            ]
            for i in range(300):
                await bad.send(frames[i % len(frames)])

        async def calls() -> list[Any]:
            return await asyncio.gather(*(good_a.call("good.echo", {"n": i}) for i in range(300)))

        results, _ = await asyncio.gather(calls(), hostile())
        assert results == list(range(300))
        assert engine.protocol_errors_total > 0
        # The bad worker is still connected and served.
        assert await bad.call("good.echo", {"n": -1}) == -1


async def test_oversized_message_closes_only_that_connection(engine_factory: Any) -> None:
    async with (
        engine_factory(max_message_bytes=64 * 1024) as engine,
        raw_worker(engine) as good,
        raw_worker(engine) as big,
    ):
        await big.send(json.dumps({"type": "ping", "pad": "x" * 100_000}))
        await asyncio.wait_for(big.ws.wait_closed(), 5)
        assert big.ws.close_code == 1009
        assert await good.call("engine::functions::list", {}) == {"functions": []}


async def test_connection_limit_refuses_with_reason(engine_factory: Any) -> None:
    async with (
        engine_factory(max_connections=2) as engine,
        raw_worker(engine),
        raw_worker(engine),
        websockets.connect(f"ws://127.0.0.1:{engine.port}/") as ws,
    ):
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1013
        assert "connection limit" in info.value.rcvd.reason


async def test_worker_that_stops_reading_is_disconnected(engine_factory: Any) -> None:
    async with engine_factory(send_queue_size=50) as engine, raw_worker(engine) as caller:
        # A raw socket that registers a function and never reads what the engine sends.
        _reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        writer.write(
            (
                f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        payload = json.dumps({"type": "registerfunction", "id": "stuck.fn"}).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        await writer.drain()
        await wait_until(lambda: engine.functions.get("stuck.fn") is not None)
        big = "x" * 60_000
        for _ in range(200):
            await caller.call_void("stuck.fn", {"pad": big})
        await wait_until(
            lambda: engine.functions.get("stuck.fn") is None,
            timeout=15,
            what="the non-reading worker to be disconnected",
        )
        assert await caller.call("engine::functions::list", {}) == {"functions": []}
        writer.close()


async def test_static_token_auth(engine_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("III_TEST_TOKEN", "s3cret")
    config = "modules: []\nauth: {tokens_env: [III_TEST_TOKEN]}\n"
    async with engine_factory(config) as engine:
        url = f"ws://127.0.0.1:{engine.port}/"
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(url)
        assert info.value.response.status_code == 401
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(url, additional_headers={"Authorization": "Bearer wrong"})
        from iii_core.testing import RawWorker

        w = await RawWorker(url).connect(additional_headers={"Authorization": "Bearer s3cret"})
        assert await w.call("engine::functions::list", {}) == {"functions": []}
        await w.close()


async def test_auth_function_restricts_calls(engine_factory: Any) -> None:
    import contextlib

    from iii_core.testing import RawWorker

    config = "modules: []\nauth: {auth_function_id: 'auth::check'}\n"
    async with engine_factory(config) as engine:
        seen: list[Any] = []

        async def check(data: Any, ctx: Any) -> Any:
            seen.append(data)
            if data["query"].get("who") == "limited":
                return {"allowed": True, "allowed_functions": ["engine::functions::list"]}
            return data["headers"].get("x-team") == "core"

        engine.register_function("auth::check", check)
        url = f"ws://127.0.0.1:{engine.port}/"
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(url)
        full = await RawWorker(url).connect(additional_headers={"X-Team": "core"})
        limited = await RawWorker(url + "?who=limited").connect()
        try:
            assert seen[0]["ip_address"] == "127.0.0.1"
            assert (await limited.call_raw("auth::check", {}))["error"]["code"] == "forbidden"
            assert await limited.call("engine::functions::list", {}) is not None
            assert (await full.call_raw("nope", {}))["error"]["code"] == "function_not_found"
        finally:
            with contextlib.suppress(Exception):
                await full.close()
                await limited.close()


async def test_registrations_per_worker_are_capped(engine_factory: Any) -> None:
    async with (
        engine_factory(max_registrations_per_worker=5) as engine,
        raw_worker(engine) as greedy,
        raw_worker(engine) as other,
    ):
        for i in range(4):
            await greedy.send({"type": "registerfunction", "id": f"greedy.f{i}"})
        await greedy.send({"type": "registerfunction", "id": "greedy.f0"})  # not a new one
        trigger_id = await greedy.register_trigger("some-type", "greedy.f0", {})
        refused = await greedy.register_trigger("some-type", "greedy.f1", {})
        await greedy.send({"type": "registerfunction", "id": "greedy.f9"})
        result = await asyncio.wait_for(greedy.inbox.get(), 5)
        assert result["type"] == "triggerregistrationresult" and result["id"] == refused
        assert "max_registrations_per_worker" in result["error"]["message"]
        assert engine.triggers.get(trigger_id) is not None
        assert engine.functions.get("greedy.f9") is None
        assert sum(1 for e in engine.functions if e.id.startswith("greedy.")) == 4
        # Another worker is not affected by the greedy one's limit.
        await other.send({"type": "registerfunction", "id": "other.f"})
        await wait_until(lambda: engine.functions.get("other.f") is not None)
