"""Data channels (reference §3.6): end of stream, removal, and a reader that goes away."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from iii_core.channels import ChannelManager
from iii_core.errors import InvocationError
from iii_core.testing import raw_worker, wait_until


async def test_close_nowait_on_a_full_buffer_keeps_every_item() -> None:
    # The REST module ends a request body with close_nowait right after its last send, which
    # may have filled the buffer: the end marker must not push a body chunk out.
    channel = ChannelManager().create(2)
    await channel.send(b"one")
    await channel.send(b"two")
    channel.close_nowait()
    assert [await channel.receive() for _ in range(3)] == [b"one", b"two", None]
    assert await channel.receive() is None


async def test_close_on_a_full_buffer_does_not_wait_for_the_reader() -> None:
    channel = ChannelManager().create(1)
    await channel.send("one")
    await asyncio.wait_for(channel.close(), 2)
    assert [await channel.receive(), await channel.receive()] == ["one", None]


async def test_removing_a_channel_frees_a_sender_blocked_on_a_full_buffer() -> None:
    manager = ChannelManager()
    channel = manager.create(1)
    await channel.send("one")
    blocked = asyncio.ensure_future(channel.send("two"))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    manager.remove(channel.id)
    with pytest.raises(InvocationError) as info:
        await asyncio.wait_for(blocked, 2)
    assert info.value.code == "channel_closed"
    assert len(manager) == 0


async def test_reader_socket_gone_closes_a_blocked_writer(engine_factory: Any) -> None:
    """The reference drops the receiver with its socket, so the writer's next send fails and
    its socket closes; a writer must not hang on a full buffer nobody will drain."""
    import websockets

    async with engine_factory() as engine, raw_worker(engine) as w:
        refs = await w.call("engine::channels::create", {"buffer_size": 1})
        cid = refs["writer"]["channel_id"]
        base = f"ws://127.0.0.1:{engine.port}/ws/channels/{cid}"
        ws_w = await websockets.connect(f"{base}?key={refs['writer']['access_key']}&dir=write")
        ws_r = await websockets.connect(
            f"{base}?key={refs['reader']['access_key']}&dir=read", close_timeout=0.5
        )
        try:
            for i in range(4):
                await ws_w.send(f"item {i}")
            assert await asyncio.wait_for(ws_r.recv(), 5) == "item 0"
            await ws_r.close()
            # The writer keeps streaming: once the engine notices the reader is gone, the
            # writer's socket must be closed rather than left blocked on a full buffer.
            with contextlib.suppress(websockets.ConnectionClosed):
                for i in range(4, 400):
                    await ws_w.send(f"item {i}")
                    await asyncio.sleep(0.02)
            await wait_until(lambda: len(engine.channels) == 0, 10, "channel released")
            await asyncio.wait_for(ws_w.wait_closed(), 10)
        finally:
            with contextlib.suppress(Exception):
                await ws_w.close()
        await wait_until(lambda: len(engine._server.sockets) == 1, 10, "channel sockets closed")


async def test_on_item_fires_once_for_the_next_item_or_the_end() -> None:
    channel = ChannelManager().create(4)
    calls: list[str] = []
    channel.on_item(lambda: calls.append("first"))
    await channel.send("a")
    await channel.send("b")
    assert calls == ["first"]
    channel.on_item(lambda: calls.append("eof"))
    channel.close_nowait()
    assert calls == ["first", "eof"]
