"""Data channels: bounded one-way streams of text or binary items between two ends.

A channel has one sender end and one receiver end, each claimed once: by a worker over
``/ws/channels/{id}?key=...&dir=write|read`` or by a module in-process (the HTTP module streams
request and response bodies this way).  The buffer holds at most ``buffer_size`` items; a sender
waits when it is full.  Channels whose ends were never claimed are swept after ``max_age_s``.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

from iii_core.errors import InvocationError
from iii_core.ids import random_bytes, uuid4_of

DEFAULT_BUFFER: Final = 64
MAX_BUFFER: Final = 1024

ChannelItem = str | bytes


class _EndOfStream:
    __slots__ = ()


_EOF: Final = _EndOfStream()


class Channel:
    """One channel.  ``send``/``close`` on the sender side, ``receive`` on the receiver side."""

    def __init__(self, buffer_size: int) -> None:
        random = random_bytes(34)  # the id (a UUID v4) and the access key
        self.id = uuid4_of(random)
        self.key = base64.urlsafe_b64encode(random[16:]).decode()
        self.buffer_size = buffer_size
        self.created_at = time.monotonic()
        self.sender_claimed = False
        self.receiver_claimed = False
        self.closed = False
        self.receiver_done = False
        """True once the receiving end has gone (see :meth:`abort`)."""
        # Unbounded: ``send`` enforces ``buffer_size``, so that the end marker never waits for
        # room nor pushes data out.
        self._items: asyncio.Queue[ChannelItem | _EndOfStream] | None = None
        self._space: asyncio.Future[None] | None = None
        """Set while a sender waits for room; resolved by ``receive`` and by ``abort``."""
        self._on_item: Callable[[], object] | None = None

    @property
    def _queue(self) -> asyncio.Queue[ChannelItem | _EndOfStream]:
        # Created on first use: most HTTP requests never put anything on their channels.
        if self._items is None:
            self._items = asyncio.Queue()
        return self._items

    def ref(self, direction: str) -> dict[str, str]:
        """The ``StreamChannelRef`` a worker uses to open one end."""
        return {"channel_id": self.id, "access_key": self.key, "direction": direction}

    def claim(self, direction: str) -> bool:
        """Claim the ``read`` or ``write`` end; False when it was already claimed."""
        if direction == "write":
            if self.sender_claimed:
                return False
            self.sender_claimed = True
        else:
            if self.receiver_claimed:
                return False
            self.receiver_claimed = True
        return True

    async def send(self, item: ChannelItem) -> None:
        """Queue one item; wait while the buffer is full; raise once the channel is closed
        (by its sender, or by :meth:`abort` when the receiving side is gone)."""
        queue = self._queue
        while True:
            if self.closed:
                raise InvocationError("channel is closed", code="channel_closed")
            if queue.qsize() < self.buffer_size:
                queue.put_nowait(item)
                if self._on_item is not None:
                    self._notify()
                return
            space = self._space
            if space is None or space.done():
                space = self._space = asyncio.get_running_loop().create_future()
            await space

    async def close(self) -> None:
        """End of stream: the receiver sees ``None`` once the buffer drains."""
        self.close_nowait()

    def close_nowait(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._items is not None:  # no queue yet: ``receive`` sees ``closed`` instead
            self._items.put_nowait(_EOF)
        if self._on_item is not None:
            self._notify()

    def on_item(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once, when the next item (or the end of stream) is queued.

        An in-process reader (the REST module's request loop) waits on one future for several
        events this way, instead of running a task per ``receive``.
        """
        self._on_item = callback

    def _notify(self) -> None:
        callback = self._on_item
        self._on_item = None
        if callback is not None:
            callback()

    def abort(self) -> None:
        """The receiving side is gone: end the stream and fail a sender waiting for room."""
        self.receiver_done = True
        self.close_nowait()
        self._wake_sender()

    def _wake_sender(self) -> None:
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)

    async def receive(self) -> ChannelItem | None:
        """The next item, or ``None`` at end of stream."""
        if self._items is None and self.closed:  # closed before anything was sent
            return None
        item = await self._queue.get()
        if self._space is not None:
            self._wake_sender()
        if isinstance(item, _EndOfStream):
            self._queue.put_nowait(_EOF)  # keep reporting end of stream
            return None
        return item

    def __len__(self) -> int:
        return 0 if self._items is None else self._items.qsize()


class ChannelManager:
    """Channel id → :class:`Channel`, bounded in number."""

    def __init__(self, max_channels: int = 10_000, max_age_s: float = 300.0) -> None:
        self.max_channels = max_channels
        self.max_age_s = max_age_s
        self._channels: dict[str, Channel] = {}

    def create(self, buffer_size: Any = None) -> Channel:
        if buffer_size is None:
            size = DEFAULT_BUFFER
        elif isinstance(buffer_size, int) and not isinstance(buffer_size, bool):
            size = min(max(buffer_size, 1), MAX_BUFFER)
        else:
            raise InvocationError(
                f"buffer_size must be an integer, got {buffer_size!r}",
                code="deserialization_error",
            )
        if len(self._channels) >= self.max_channels:
            self.sweep()
            if len(self._channels) >= self.max_channels:
                raise InvocationError(
                    f"too many open channels (limit {self.max_channels})", code="channel_limit"
                )
        channel = Channel(size)
        self._channels[channel.id] = channel
        return channel

    def get(self, channel_id: str, key: str | None = None) -> Channel | None:
        channel = self._channels.get(channel_id)
        if channel is None or (key is not None and not secrets.compare_digest(channel.key, key)):
            return None
        return channel

    def remove(self, channel_id: str) -> None:
        channel = self._channels.pop(channel_id, None)
        if channel is not None:
            channel.abort()

    def release(self, channel: Channel) -> None:
        """Forget a channel once both ends are done with it."""
        self._channels.pop(channel.id, None)

    def sweep(self) -> int:
        """Remove channels older than ``max_age_s`` that still have an unclaimed end."""
        now = time.monotonic()
        stale = [
            c.id
            for c in self._channels.values()
            if now - c.created_at > self.max_age_s and not (c.sender_claimed and c.receiver_claimed)
        ]
        for channel_id in stale:
            self.remove(channel_id)
        return len(stale)

    def __len__(self) -> int:
        return len(self._channels)
