"""Data channels: one-way streams of text or binary items through the engine.

A channel has a writer end and a reader end, each opened once over
``/ws/channels/{id}?key=...&dir=write|read`` on the engine's worker port.  Ends travel between
workers as ``StreamChannelRef`` dicts (``{channel_id, access_key, direction}``) inside call data;
this module turns such dicts back into :class:`ChannelReader` / :class:`ChannelWriter` objects
(as the published SDKs do) and turns the objects into refs again when they are sent.

Sockets open lazily, on the first read or write, so that passing an end along costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import websockets
from websockets.asyncio.client import ClientConnection

MAX_FRAME_BYTES: Final = 64 * 1024
"""Binary writes larger than this go out as several frames (one channel item each)."""

_REF_KEYS: Final = frozenset({"channel_id", "access_key", "direction"})


def is_channel_ref(value: Any) -> bool:
    """True for a ``StreamChannelRef``-shaped dict."""
    return (
        isinstance(value, dict)
        and value.keys() == _REF_KEYS
        and value["direction"] in ("read", "write")
        and isinstance(value["channel_id"], str)
        and isinstance(value["access_key"], str)
    )


def channel_url(base_url: str, ref: dict[str, str], direction: str) -> str:
    """``ws://host:port/ws/channels/<id>?key=<key>&dir=<direction>`` for an engine URL."""
    base = base_url.split("?", 1)[0].rstrip("/")
    return f"{base}/ws/channels/{ref['channel_id']}?key={quote(ref['access_key'])}&dir={direction}"


class _ChannelEnd:
    """Shared part of both ends: the ref and a lazily opened socket."""

    direction: str = ""

    def __init__(self, base_url: str, ref: dict[str, str]) -> None:
        self.ref: dict[str, str] = {
            "channel_id": ref["channel_id"],
            "access_key": ref["access_key"],
            "direction": self.direction,
        }
        self._url = channel_url(base_url, ref, self.direction)
        self._ws: ClientConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def channel_id(self) -> str:
        return self.ref["channel_id"]

    async def _socket(self) -> ClientConnection:
        async with self._lock:
            if self._ws is None:
                self._ws = await websockets.connect(
                    self._url, max_size=None, compression=None, proxy=None
                )
            return self._ws

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channel_id={self.channel_id!r})"


class ChannelWriter(_ChannelEnd):
    """The sending end.  Close it to signal end of stream to the reader."""

    direction = "write"

    async def write(self, data: bytes) -> None:
        """Send binary data (split into frames of at most 64 KiB)."""
        ws = await self._socket()
        view = memoryview(data)
        for start in range(0, max(len(view), 1), MAX_FRAME_BYTES):
            await ws.send(bytes(view[start : start + MAX_FRAME_BYTES]))

    async def send_message(self, text: str) -> None:
        """Send one text item (the published SDKs use text items for control messages)."""
        ws = await self._socket()
        await ws.send(text)

    async def close(self) -> None:
        """End the stream.  Opens the socket first if nothing was written, so the reader still
        sees a clean end of stream instead of waiting for the engine's sweeper."""
        ws = await self._socket()
        await ws.close()

    async def __aenter__(self) -> ChannelWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ChannelReader(_ChannelEnd):
    """The receiving end: iterate it for items (``bytes`` or ``str``) until end of stream."""

    direction = "read"

    def __init__(self, base_url: str, ref: dict[str, str]) -> None:
        super().__init__(base_url, ref)
        self._message_callbacks: list[Callable[[str], Any]] = []

    def on_message(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback`` for every text item met by :meth:`read_all` / :meth:`chunks`."""
        self._message_callbacks.append(callback)

    async def __aiter__(self) -> AsyncIterator[bytes | str]:
        """Every item, text or binary, in order, until the writer closes."""
        ws = await self._socket()
        try:
            async for item in ws:
                yield item
        except websockets.ConnectionClosed:
            return

    async def chunks(self) -> AsyncIterator[bytes]:
        """Binary items only; text items go to the :meth:`on_message` callbacks."""
        async for item in self:
            if isinstance(item, bytes):
                yield item
            else:
                for callback in self._message_callbacks:
                    callback(item)

    async def read_all(self) -> bytes:
        """All binary items joined (text items go to the :meth:`on_message` callbacks)."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


@dataclass(frozen=True, slots=True)
class Channel:
    """Both ends of a new channel, plus their refs for passing to another worker."""

    writer: ChannelWriter
    reader: ChannelReader

    @property
    def writer_ref(self) -> dict[str, str]:
        return self.writer.ref

    @property
    def reader_ref(self) -> dict[str, str]:
        return self.reader.ref


def resolve_channels(data: Any, base_url: str) -> Any:
    """Replace every ``StreamChannelRef`` dict inside ``data`` by a reader or writer object."""
    if isinstance(data, dict):
        if is_channel_ref(data):
            cls = ChannelReader if data["direction"] == "read" else ChannelWriter
            return cls(base_url, data)
        return {k: resolve_channels(v, base_url) for k, v in data.items()}
    if isinstance(data, list):
        return [resolve_channels(v, base_url) for v in data]
    return data


def encode_hook(value: Any) -> Any:
    """``msgspec`` hook: channel ends travel as their refs."""
    if isinstance(value, _ChannelEnd):
        return value.ref
    raise NotImplementedError(f"cannot serialise {type(value).__name__} to JSON")
