"""Fixtures for the SDK tests: workers with fast reconnects, and a TCP relay that can cut a
connection without a close frame (the way a network failure does)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import iii_worker
import pytest
from iii_worker import ReconnectConfig, Worker

FAST_RECONNECT = ReconnectConfig(initial_delay=0.05, max_delay=0.5)


def url_of(engine: Any) -> str:
    return f"ws://127.0.0.1:{engine.port}"


WorkerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Worker]]


@pytest.fixture
def sdk_worker() -> WorkerFactory:
    """``async with sdk_worker(engine_or_url, name=...) as worker`` (fast reconnects)."""

    @contextlib.asynccontextmanager
    async def make(target: Any, **options: Any) -> AsyncIterator[Worker]:
        options.setdefault("reconnect", FAST_RECONNECT)
        options.setdefault("connect_timeout", 10.0)
        url = target if isinstance(target, str) else url_of(target)
        async with iii_worker.connect(url, **options) as worker:
            yield worker

    return make


class TcpRelay:
    """Forwards bytes between clients and an upstream port; ``cut()`` aborts every connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpRelay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def tcp_relay() -> AsyncIterator[Callable[[int], Any]]:
    relays: list[TcpRelay] = []

    async def make(upstream_port: int) -> TcpRelay:
        relay = await TcpRelay(upstream_port).start()
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        await relay.close()
