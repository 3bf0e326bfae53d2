"""The client WebSocket server on port 3112 (aiohttp, like the engine's worker transport).

Route ``/``: the stream subscribe protocol of reference §5.7.  Route ``/iii-stream.js``: the
package's browser client, served for convenience (``serve_client_js``).

Per connection there is one reader loop that handles ``join`` / ``leave`` in order (join
triggers are awaited, as in the reference); outbound envelopes are written by the fan-out
(:mod:`iii_stream.connections`), never by a per-connection task.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from iii_stream.connections import ClientConnection, Subscription, SubscriptionIndex

if TYPE_CHECKING:
    import asyncio

    from iii_stream.config import StreamConfig

log = logging.getLogger("iii.stream.server")

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class AuthRejected(Exception):
    """The ``auth_function`` refused the upgrade (answered 401)."""


class StreamHost(Protocol):
    """What the server asks the module for."""

    async def authenticate(self, request_info: dict[str, Any]) -> Any: ...

    async def join_authorized(self, sub: Subscription) -> bool: ...

    async def left(self, sub: Subscription) -> None: ...

    async def sync_value(self, sub: Subscription) -> tuple[bool, Any]: ...


def envelope(stream: str, group: str, item: Any, event: dict[str, Any]) -> dict[str, Any]:
    """The outbound envelope, camelCase as in the reference."""
    return {
        "type": "stream",
        "timestamp": int(time.time() * 1000),
        "streamName": stream,
        "groupId": group,
        "id": item,
        "event": event,
    }


class StreamServer:
    def __init__(self, config: StreamConfig, host: StreamHost) -> None:
        self.config = config
        self.host = host
        self.index = SubscriptionIndex()
        self.connections: dict[int, ClientConnection] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self.refused_total = 0
        self.invalid_frames_total = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port: int | None = None
        app = web.Application()
        app.router.add_get("/", self._client)
        if config.serve_client_js:
            app.router.add_get("/iii-stream.js", self._client_js)
        self.app = app

    async def start(self) -> int:
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await self._site.start()
        # aiohttp does not expose the bound port; a TCPSite's server is an asyncio.Server.
        server = cast("asyncio.Server | None", self._site._server)
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        self.index.flush()  # events already accepted go out before the close frames
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"engine shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ HTTP

    async def _client_js(self, _request: web.Request) -> web.Response:
        text = resources.files("iii_stream").joinpath("static/iii-stream.js").read_text()
        return web.Response(
            text=text,
            content_type="application/javascript",
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
        )

    async def _client(self, request: web.Request) -> web.StreamResponse:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        addr = f"{peername[0]}:{peername[1]}" if peername else ""
        context: Any = None
        if self.config.auth_function:
            try:
                context = await self.host.authenticate(_auth_input(request, addr))
            except AuthRejected as exc:
                self.refused_total += 1
                return web.Response(status=401, text=f"Unauthorized: {exc}")
        if len(self.connections) >= self.config.max_connections:
            self.refused_total += 1
            return web.Response(
                status=503,
                text=f"stream connection limit reached ({self.config.max_connections})",
            )
        ws = web.WebSocketResponse(
            max_msg_size=self.config.max_message_bytes, compress=False, autoping=True
        )
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        conn = ClientConnection(transport, context, self.config.send_buffer_bytes, addr)  # type: ignore[arg-type]
        self.connections[conn.id] = conn
        self.sockets.add(ws)
        warned = False
        try:
            while not conn.closed:
                msg = await ws.receive()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    problem = await self._handle(conn, msg.data)
                    if problem is not None:
                        self.invalid_frames_total += 1
                        if not warned:  # once per connection: a client must not flood the log
                            warned = True
                            log.warning("stream client %s: ignored a frame: %s", conn.id, problem)
                elif msg.type is WSMsgType.ERROR:
                    log.info("stream client %s: connection error: %s", conn.id, ws.exception())
                    break
                else:
                    break
        finally:
            conn.closed = True
            self.sockets.discard(ws)
            del self.connections[conn.id]
            for sub in list(conn.subscriptions.values()):
                await self._leave(conn, sub)
            if not ws.closed and not transport.is_closing():
                await ws.close()
        return ws

    # ------------------------------------------------------------------ protocol

    async def _handle(self, conn: ClientConnection, data: str | bytes) -> str | None:
        """Handle one client frame; return why it was ignored, or None."""
        try:
            msg = _decode(data)
        except (msgspec.DecodeError, UnicodeError) as exc:
            return f"not JSON ({exc})"
        except RecursionError:  # msgspec's depth guard: nesting deeper than the C stack allows
            return "JSON nested too deeply"
        if not isinstance(msg, dict):
            return "not a JSON object"
        kind = msg.get("type")
        body = msg.get("data")
        if kind not in ("join", "leave"):
            return f"unknown type {kind!r} (expected join or leave)"
        if not isinstance(body, dict):
            return f"{kind}: 'data' must be an object"
        sub_id = body.get("subscriptionId")
        stream = body.get("streamName")
        group = body.get("groupId")
        item = body.get("id")
        if not isinstance(sub_id, str) or not isinstance(stream, str) or not isinstance(group, str):
            return f"{kind}: subscriptionId, streamName and groupId must be strings"
        if item is not None and not isinstance(item, str):
            return f"{kind}: id must be a string or null"
        if kind == "leave":
            existing = conn.subscriptions.get(sub_id)
            if existing is not None:
                await self._leave(conn, existing)
            return None
        sub = Subscription(conn, sub_id, stream, group, item)
        await self._join(conn, sub)
        return None

    async def _join(self, conn: ClientConnection, sub: Subscription) -> None:
        authorized = await self.host.join_authorized(sub)
        if conn.closed:
            return
        too_many = (
            sub.subscription_id not in conn.subscriptions
            and len(conn.subscriptions) >= self.config.max_subscriptions_per_connection
        )
        if too_many:
            log.warning(
                "stream client %s: join refused, %d subscriptions is the limit per connection",
                conn.id,
                self.config.max_subscriptions_per_connection,
            )
        if not authorized or too_many:
            self.index.send_to(
                conn,
                _encode(
                    envelope(sub.stream_name, sub.group_id, sub.item_id, {"type": "unauthorized"})
                ),
            )
            return
        previous = conn.subscriptions.get(sub.subscription_id)
        if previous is not None:
            self.index.remove(previous)
        conn.subscriptions[sub.subscription_id] = sub
        self.index.add(sub)
        ok, value = await self.host.sync_value(sub)
        if ok and not conn.closed:
            self.index.send_to(
                conn,
                _encode(
                    envelope(
                        sub.stream_name, sub.group_id, sub.item_id, {"type": "sync", "data": value}
                    )
                ),
            )

    async def _leave(self, conn: ClientConnection, sub: Subscription) -> None:
        conn.subscriptions.pop(sub.subscription_id, None)
        self.index.remove(sub)
        await self.host.left(sub)

    def deliver(self, event: dict[str, Any], payload: bytes) -> int:
        return self.index.deliver(
            event.get("streamName"), event.get("groupId"), event.get("id"), payload
        )


def _auth_input(request: web.Request, addr: str) -> dict[str, Any]:
    """The ``auth_function`` input of reference §5.7 (raw, not percent-decoded, query)."""
    headers: dict[str, str] = {}
    for name, value in request.raw_headers:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            continue
        if all(32 <= ord(c) < 127 or c == "\t" for c in text):
            headers[name.decode("latin-1").lower()] = text
    query: dict[str, list[str]] = {}
    raw_query = request.rel_url.raw_query_string
    for part in raw_query.split("&") if raw_query else []:
        key, _, val = part.partition("=")
        query.setdefault(key, []).append(val)
    return {"headers": headers, "path": request.path, "query_params": query, "addr": addr}
