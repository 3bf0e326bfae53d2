"""The WebSocket listener on 49134: worker sockets (``/`` and ``/otel``) and data channels.

aiohttp's server: its frame reader and writer are compiled, which measured ~35 % faster than
``websockets`` for a relay on this hardware.  Per connection there is one reader loop (this
module's handler) and one writer task fed by a bounded queue; a worker whose queue fills (it
stopped reading) is disconnected, never allowed to grow the engine's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from typing import TYPE_CHECKING, Any, Final, cast

from aiohttp import WSCloseCode, WSMsgType, web

from iii_core import protocol
from iii_core.auth import Authenticator, AuthRefused
from iii_core.errors import InvocationError
from iii_core.protocol import WorkerRegistered
from iii_core.worker_messages import WorkerMessages

if TYPE_CHECKING:
    from iii_core.engine import Engine

log = logging.getLogger("iii.transport")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY


_SMALL_HEADERS: Final = tuple(bytes((0x81, n)) for n in range(126))
_PACK_LEN2: Final = struct.Struct("!BBH").pack
_PACK_LEN3: Final = struct.Struct("!BBQ").pack
_BIG_FRAME: Final = 64 * 1024


def _text_header(length: int) -> bytes:
    """The header of an unmasked, final, uncompressed text frame (RFC 6455 §5.2)."""
    if length < 126:
        return _SMALL_HEADERS[length]
    if length < 65536:
        return _PACK_LEN2(0x81, 126, length)
    return _PACK_LEN3(0x81, 127, length)


class WorkerSocket:
    """A worker's outbound side.

    While the peer keeps up, frames are framed here and written to the transport directly: the
    first frame of an event-loop turn at once (no task switch per message, which is most of a
    relayed call's latency), the rest of that turn's frames together in one ``write`` at the end
    of the turn (one system call for a burst instead of one each, which is most of the engine's
    CPU under load).  When the transport's buffer
    passes ``HIGH_WATER`` bytes, or compression is on, frames go to a bounded queue drained by
    the writer task, which waits for the socket to drain.  A worker whose queue fills (it stopped
    reading) is disconnected.  Worst-case memory per connection: ``HIGH_WATER`` plus ``limit``
    queued frames.
    """

    HIGH_WATER = 1024 * 1024

    __slots__ = (
        "_batch",
        "_batch_bytes",
        "_close_reason",
        "_in_turn",
        "_limit",
        "_loop",
        "_queue",
        "_transport",
        "_waiter",
        "closed",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, limit: int, compress: bool = False) -> None:
        self.ws = ws
        self._queue: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self._limit = limit
        self._close_reason: tuple[int, str] | None = None
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._in_turn = False
        self._loop = asyncio.get_running_loop()
        writer = getattr(ws, "_writer", None)
        transport = getattr(writer, "transport", None)
        self._transport: asyncio.WriteTransport | None = None if compress else transport

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        queue = self._queue
        transport = self._transport
        if (
            transport is not None
            and not queue
            and not transport.is_closing()
            and transport.get_write_buffer_size() + self._batch_bytes < self.HIGH_WATER
        ):
            length = len(frame)
            if not self._in_turn:
                # First frame of this turn: write it now (no added latency), batch the rest.
                self._in_turn = True
                self._loop.call_soon(self._flush)
            elif length < _BIG_FRAME:
                self._batch.append(_text_header(length))
                self._batch.append(frame)
                self._batch_bytes += length
                return
            else:  # a big frame is not worth copying into the batch: keep the order, write it
                self._write_batch()
            try:
                if length < _BIG_FRAME:
                    transport.write(_text_header(length) + frame)
                else:
                    transport.write(_text_header(length))
                    transport.write(frame)
            except ConnectionError:
                self.close(WSCloseCode.ABNORMAL_CLOSURE, "")
            return
        self._write_batch()
        if len(queue) >= self._limit:
            log.warning(
                "worker send queue full (%d frames): the worker is not reading; disconnecting",
                self._limit,
            )
            self.close(WSCloseCode.POLICY_VIOLATION, "send queue full: worker is not reading")
            # A close frame cannot get past a full buffer: drop the connection so that the reader
            # loop ends and the worker's cleanup runs now.
            transport = self.ws._req.transport if self.ws._req is not None else None
            if transport is not None:
                transport.abort()
            return
        queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        """End of the event-loop turn: write what was batched, the next frame goes out at once."""
        self._in_turn = False
        self._write_batch()

    def _write_batch(self) -> None:
        """Write the frames batched during this event-loop turn in one system call."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        self._batch_bytes = 0
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            return
        try:
            transport.write(b"".join(batch))
        except ConnectionError:
            self.close(WSCloseCode.ABNORMAL_CLOSURE, "")

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self._write_batch()
        self.closed = True
        self._queue.clear()
        self._close_reason = (code, reason)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run_writer(self) -> None:
        ws = self.ws
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                while queue:
                    await ws.send_frame(queue[0], _TEXT)
                    if queue:
                        queue.popleft()
                if self.closed:
                    break
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except (ConnectionError, RuntimeError):
            self.closed = True
        if self._close_reason is not None and not ws.closed:
            code, reason = self._close_reason
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=code, message=reason.encode())

    def __len__(self) -> int:
        return len(self._queue)


class WorkerServer:
    """Owns the aiohttp application, its listener and every open worker socket."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config
        self.messages = WorkerMessages(engine)
        self.authenticator = Authenticator(engine)
        self.sockets: set[web.WebSocketResponse] = set()
        self.connections_refused = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        app = web.Application()
        app.router.add_get("/", self._worker)
        app.router.add_get("/otel", self._worker)
        app.router.add_get("/ws/channels/{channel_id}", self._channel)
        self.app = app

    async def start(self, host: str, port: int) -> int:
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, backlog=self.config.listen_backlog)
        await self._site.start()
        # aiohttp types ``_server`` as AbstractServer; a TCPSite's is an asyncio.Server.
        server = cast("asyncio.Server | None", self._site._server)
        assert server is not None
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def stop_accepting(self) -> None:
        if self._site is not None and self._site._server is not None:
            self._site._server.close()  # type: ignore[union-attr]

    async def close(self) -> None:
        async def close_one(ws: web.WebSocketResponse) -> None:
            try:
                await asyncio.wait_for(
                    ws.close(code=WSCloseCode.GOING_AWAY, message=b"engine shutting down"), 1.0
                )
            except (TimeoutError, ConnectionError, RuntimeError):
                # A peer that does not read cannot take a close frame: drop it.
                req = ws._req
                if req is not None and req.transport is not None:
                    req.transport.abort()

        await asyncio.gather(*(close_one(ws) for ws in list(self.sockets)))
        if self._runner is not None:
            await self._runner.cleanup()

    def _new_socket(self) -> web.WebSocketResponse:
        return web.WebSocketResponse(
            max_msg_size=self.config.max_message_bytes,
            compress=self.config.compression == "deflate",
            autoping=True,
            decode_text=False,
        )

    async def _worker(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine
        ip = request.remote or ""
        try:
            grant = await self.authenticator.check(request, ip)
        except AuthRefused as exc:
            log.warning("worker connection from %s refused: %s", ip, exc)
            return web.Response(status=401, text=f"Unauthorized: {exc}")
        ws = self._new_socket()
        await ws.prepare(request)
        if len(self.sockets) >= self.config.max_connections:
            self.connections_refused += 1
            if self.connections_refused % 100 == 1:  # a warning, not a flood under attack
                log.warning(
                    "connection from %s refused: limit of %d connections reached "
                    "(%d refused so far)",
                    ip,
                    self.config.max_connections,
                    self.connections_refused,
                )
            await ws.close(
                code=WSCloseCode.TRY_AGAIN_LATER,
                message=f"connection limit reached ({self.config.max_connections})".encode(),
            )
            return ws
        self.sockets.add(ws)
        conn = WorkerSocket(ws, self.config.send_queue_size, self.config.compression == "deflate")
        worker = engine.worker_connected(conn, ip, request.path)
        if grant is not None:
            worker.allowed_functions = grant.allowed_functions
            worker.allowed_registrations = grant.allowed_registrations
        conn.send(protocol.encode(WorkerRegistered(worker_id=worker.id)))
        writer = asyncio.ensure_future(conn.run_writer())
        handle_frame = self.messages.handle_frame
        handle_binary = self.messages.handle_binary
        try:
            while not conn.closed:
                msg = await ws.receive()
                kind = msg.type
                if kind is _TEXT:
                    pending = handle_frame(worker, msg.data)
                elif kind is _BINARY:
                    pending = handle_binary(worker, msg.data)
                elif kind is WSMsgType.ERROR:
                    error = ws.exception()
                    log.warning("worker %s connection error: %s", worker.id, error)
                    break
                else:
                    break
                if pending is not None:
                    await pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("worker %s: unexpected error, closing: %s", worker.id, exc, exc_info=exc)
        finally:
            conn.closed = True
            conn.close(WSCloseCode.OK, "")
            self.sockets.discard(ws)
            await engine.worker_disconnected(worker)
            try:
                await asyncio.wait_for(writer, 1.0)
            except (TimeoutError, asyncio.CancelledError, ConnectionError):
                writer.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    async def _channel(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("key")
        direction = request.query.get("dir")
        if not key:
            return web.Response(status=400, text="Missing query parameter 'key'")
        if direction not in ("read", "write"):
            return web.Response(status=400, text="Query parameter 'dir' must be 'read' or 'write'")
        channel = self.engine.channels.get(request.match_info["channel_id"], key)
        if channel is None:
            return web.Response(status=404, text="Channel not found")
        ws = self._new_socket()
        await ws.prepare(request)
        if not channel.claim(direction):
            await ws.close(
                code=WSCloseCode.POLICY_VIOLATION, message=b"channel end already claimed"
            )
            return ws
        self.sockets.add(ws)
        try:
            if direction == "write":
                await self._channel_writer(ws, channel)
            else:
                await self._channel_reader(ws, channel)
        finally:
            self.sockets.discard(ws)
            if direction == "read":
                # The receiving end is gone: a writer still sending must fail, not hang.
                channel.abort()
            if channel.sender_claimed and channel.receiver_claimed and channel.receiver_done:
                self.engine.channels.release(channel)
        return ws

    @staticmethod
    async def _channel_writer(ws: web.WebSocketResponse, channel: Any) -> None:
        try:
            async for msg in ws:
                if msg.type is _TEXT:
                    data = msg.data
                    await channel.send(data.decode() if isinstance(data, bytes) else data)
                elif msg.type is _BINARY:
                    await channel.send(msg.data)
                elif msg.type is WSMsgType.ERROR:
                    break
        except InvocationError:  # the reader is gone (channel_closed)
            await ws.close()
        finally:
            await channel.close()

    @staticmethod
    async def _channel_reader(ws: web.WebSocketResponse, channel: Any) -> None:
        try:
            while True:
                item = await channel.receive()
                if item is None:
                    break
                if isinstance(item, str):
                    await ws.send_str(item)
                else:
                    await ws.send_bytes(item)
        except ConnectionError:  # the reading peer went away
            return
        await ws.close()
