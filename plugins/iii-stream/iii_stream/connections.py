"""Client connections, their subscriptions, and the fan-out of one envelope to all of them.

Fan-out encodes an envelope once: the server's WebSocket frames are unmasked and uncompressed,
so the same frame bytes go to every matching client.  Frames are queued on the connection and
written straight to its transport (no task, no queue per client) once per event-loop iteration:
every frame a client got during the iteration goes out in one ``write``, so under load one
syscall per client carries many events (the send syscall is the fan-out's main cost), while an
idle engine adds no latency (the flush runs right after the current callbacks).  The transport's
write buffer plus the queued frames are the client's send buffer; when a client stops reading
and it passes ``send_buffer_bytes``, the connection is aborted (the memory is freed at once) and
every other client is unaffected.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from typing import Any

log = logging.getLogger("iii.stream.connections")

_ids = itertools.count(1)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (RFC 6455 §5.2) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class ClientConnection:
    """One browser or worker socket on the stream port."""

    __slots__ = (
        "buffered",
        "closed",
        "context",
        "id",
        "limit",
        "peer",
        "pending",
        "subscriptions",
        "transport",
    )

    def __init__(
        self, transport: asyncio.Transport, context: Any, limit: int, peer: str = ""
    ) -> None:
        self.id = next(_ids)
        self.transport = transport
        self.context = context
        self.limit = limit
        self.peer = peer
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self.pending: list[bytes] = []  # frames of this loop iteration, not yet written
        self.buffered = 0  # transport buffer + pending bytes, as of the last queue()

    def queue(self, frame: bytes) -> int:
        """Queue a ready frame for the next flush: 1 queued, 0 skipped (closed), -1 the client
        was just cut off because its send buffer is full."""
        if self.closed:
            return 0
        if not self.pending:
            transport = self.transport
            if transport.is_closing():
                self.closed = True
                return 0
            self.buffered = transport.get_write_buffer_size()
        size = self.buffered + len(frame)
        if size > self.limit:
            self.abort(f"send buffer full ({self.limit} bytes): the client is not reading")
            return -1
        self.pending.append(frame)
        self.buffered = size
        return 1

    def flush(self) -> None:
        """Write the queued frames in one go."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        if self.closed or self.transport.is_closing():
            return
        self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def abort(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.pending = []
        log.warning("stream client %s (%s) disconnected: %s", self.id, self.peer or "?", reason)
        self.transport.abort()


class Subscription:
    __slots__ = ("conn", "group_id", "item_id", "stream_name", "subscription_id")

    def __init__(
        self,
        conn: ClientConnection,
        subscription_id: str,
        stream_name: str,
        group_id: str,
        item_id: str | None,
    ) -> None:
        self.conn = conn
        self.subscription_id = subscription_id
        self.stream_name = stream_name
        self.group_id = group_id
        self.item_id = item_id

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.stream_name, self.group_id, self.item_id)

    def event_payload(self) -> dict[str, Any]:
        """The ``stream:join`` / ``stream:leave`` trigger input (snake_case, reference §5.7)."""
        return {
            "subscription_id": self.subscription_id,
            "stream_name": self.stream_name,
            "group_id": self.group_id,
            "id": self.item_id,
            "context": self.conn.context,
        }


class SubscriptionIndex:
    """(stream, group, item id or None) → subscriptions, for O(matching) delivery; owns the
    per-iteration flush of the connections that have frames queued."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, str, str | None], dict[tuple[int, str], Subscription]] = {}
        self._dirty: list[ClientConnection] = []
        self._flush_handle: asyncio.Handle | None = None
        self.count = 0
        self.delivered_total = 0
        self.slow_clients_disconnected = 0

    def add(self, sub: Subscription) -> None:
        bucket = self._index.setdefault(sub.key, {})
        ident = (sub.conn.id, sub.subscription_id)
        if ident not in bucket:
            self.count += 1
        bucket[ident] = sub

    def remove(self, sub: Subscription) -> None:
        bucket = self._index.get(sub.key)
        if bucket is None:
            return
        if bucket.pop((sub.conn.id, sub.subscription_id), None) is not None:
            self.count -= 1
        if not bucket:
            del self._index[sub.key]

    def _queue(self, conn: ClientConnection, frame: bytes) -> int:
        was_idle = not conn.pending
        status = conn.queue(frame)
        if status > 0 and was_idle:
            self._dirty.append(conn)
            if self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
        elif status < 0:
            self.slow_clients_disconnected += 1
        return status

    def flush(self) -> None:
        """Write every connection's queued frames (scheduled once per loop iteration)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    def send_to(self, conn: ClientConnection, payload: bytes) -> None:
        """Send one envelope to one client (sync, unauthorized), in order with its events."""
        self._queue(conn, text_frame(payload))

    def deliver(self, stream: Any, group: Any, item: Any, payload: bytes) -> int:
        """Send ``payload`` once per matching subscription; return how many got it."""
        if not isinstance(stream, str) or not isinstance(group, str):
            return 0
        buckets = [self._index.get((stream, group, None))]
        if isinstance(item, str):
            buckets.append(self._index.get((stream, group, item)))
        frame = b""
        sent = 0
        queue = self._queue
        for bucket in buckets:
            if not bucket:
                continue
            if not frame:
                frame = text_frame(payload)
            for sub in list(bucket.values()):
                if queue(sub.conn, frame) > 0:
                    sent += 1
        self.delivered_total += sent
        return sent
