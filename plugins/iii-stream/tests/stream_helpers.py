"""Helpers for the stream tests: an engine with the stream module, and a plain WS client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets

from iii_core import Engine

STREAM = "modules::stream::StreamModule"
MEMORY = {"class": "modules::stream::adapters::SqliteAdapter", "config": {"path": ":memory:"}}


def stream_config(**config: Any) -> dict[str, Any]:
    config.setdefault("port", 0)
    config.setdefault(
        "adapter",
        {"class": "modules::stream::adapters::SqliteAdapter", "config": {"path": ":memory:"}},
    )
    return {"modules": [{"class": STREAM, "config": config}]}


def stream_module(engine: Engine) -> Any:
    from iii_stream import StreamModule

    return next(m for m in engine.modules if isinstance(m, StreamModule))


class StreamClient:
    """A plain WebSocket client of the stream port (no SDK)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, kind: str, **data: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, "data": data}))

    async def join(self, sub: str, stream: str, group: str, item: str | None = None) -> None:
        data: dict[str, Any] = {"subscriptionId": sub, "streamName": stream, "groupId": group}
        if item is not None:
            data["id"] = item
        await self.send("join", **data)

    async def leave(self, sub: str, stream: str, group: str, item: str | None = None) -> None:
        await self.send("leave", subscriptionId=sub, streamName=stream, groupId=group, id=item)

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if predicate(msg):
                return msg

    async def nothing_within(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            msg = await asyncio.wait_for(self.ws.recv(), seconds)
            raise AssertionError(f"unexpected message {msg}")


@contextlib.asynccontextmanager
async def stream_client(port: int, **kwargs: Any) -> AsyncIterator[StreamClient]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/", **kwargs) as ws:
        yield StreamClient(ws)
