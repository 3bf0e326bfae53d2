"""Serving one HTTP request through a function: routing, input, the result/stream race, errors.

The handler is a plain ASGI callable (mounted in the Starlette app) so that the hot path does
not build a Starlette ``Request``.  Per routed request it creates two data channels
(``request_body``: engine → worker, ``response``: worker → engine) and races the function's
return against the first body item on the ``response`` channel, as the reference does.  Every
task it starts is awaited or cancelled before the request ends, and both channels are removed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iii_core import Engine, InvocationError
from iii_core.channels import Channel
from iii_core.conditions import condition_allows, condition_function
from iii_rest import request as req
from iii_rest.config import RestApiConfig
from iii_rest.response import JSON_HEADERS, StreamHead, direct, error_body, error_id
from iii_rest.routes import Route, RouteTable, normalize_path

log = logging.getLogger("iii.rest")
tracer = trace.get_tracer("iii.rest")


_CONDITION_FAILED: Final = b'{"error":"Request condition not met","skipped":true}'
_BUSY: Final = b'{"error":"too many requests in flight"}'
_TOO_LARGE: Final = b'{"error":"request body too large"}'


class BodyTooLarge(Exception):
    """The request body passed ``max_body_bytes``."""


class ClientGone(Exception):
    """The client disconnected before the request body was read."""


async def _respond(
    send: Send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or ()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _path_of(scope: Scope) -> str:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return normalize_path(raw_path.decode("latin-1"))


def _has_body(headers: dict[str, str]) -> bool:
    """Whether an HTTP/1.1 request carries a body (RFC 9112 §6.3)."""
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


def _discard(task: asyncio.Future[Any] | None) -> None:
    """Cancel a request-scoped task or future and never leave its exception unretrieved."""
    if task is None:
        return
    if task.done():
        if not task.cancelled():
            task.exception()
        return
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class _Waker:
    """One future that every event of a request completes: the call's end, the body pump's end,
    the deadline, and an item arriving on the ``response`` channel.

    The request waits on it instead of racing a task per event with ``asyncio.wait`` (the hot
    path's cost).  The channel is watched with ``Channel.on_item``, a one-shot callback on the
    next item sent.
    """

    __slots__ = ("_channel", "_loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, channel: Channel) -> None:
        self._loop = loop
        self._channel = channel
        self.future: asyncio.Future[None] = loop.create_future()

    def __call__(self, *_: Any) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def arm(self) -> asyncio.Future[None]:
        """The future to await for the next event."""
        if self.future.done():
            self.future = self._loop.create_future()
        self._channel.on_item(self)
        return self.future

    def disarm(self) -> None:
        """Stop waiting: the request streams the channel itself from now on."""
        self()


def tracer_installed() -> bool:
    """Whether an OpenTelemetry SDK tracer provider is installed (the otel module installs one)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Add ``Origin`` to ``Vary`` as Starlette's CORS middleware does for a request without an
    ``Origin`` header (every ``Vary`` entry is merged into one)."""
    varies = [value for name, value in headers if name.lower() == b"vary"]
    if not varies:
        return [*headers, (b"vary", b"Origin")]
    merged = b", ".join([*varies, b"Origin"])
    return [(n, v) for n, v in headers if n.lower() != b"vary"] + [(b"vary", merged)]


class HttpHandler:
    """The ASGI app behind every ``http`` trigger route.

    Two entries: the handler itself, mounted at ``/`` in the module's Starlette app (behind its
    CORS middleware), and :meth:`front_door`, what the HTTP server runs.
    """

    def __init__(self, engine: Engine, config: RestApiConfig, routes: RouteTable) -> None:
        self.engine = engine
        self.config = config
        self.routes = routes
        self.timeout = config.default_timeout / 1000
        self.limit = config.concurrency_request_limit
        self.max_body = config.max_body_bytes
        self.inflight = 0
        self.tracing = tracer_installed()
        """Whether spans are recorded; the module refreshes it once every module has started
        (checking per request costs an environment lookup)."""
        self.requests_total = 0
        self.rejected_total = 0

    def front_door(self, app: ASGIApp) -> ASGIApp:
        """The app the HTTP server runs, in front of ``app`` (the Starlette app).

        A request for a trigger route comes straight to the handler when Starlette's middleware
        would do nothing but add ``Vary: Origin`` (no ``Origin`` header, not ``OPTIONS``); that
        saves its four layers per request.  Everything else (cross-origin requests, preflights,
        unknown paths, routes added to the Starlette app) goes through ``app``.
        """

        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] != "OPTIONS":
                match = self.routes.match(_path_of(scope))
                if match is not None:
                    headers = req.headers_of(scope["headers"])
                    if "origin" not in headers:

                        async def send_vary(message: Message) -> None:
                            if message["type"] == "http.response.start":
                                message["headers"] = vary_origin(message["headers"])
                            await send(message)

                        await self._route(match, headers, scope, receive, send_vary)
                        return
            await app(scope, receive, send)

        return front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        match = self.routes.match(_path_of(scope))
        if match is None:
            await _respond(send, 404)
            return
        await self._route(match, req.headers_of(scope["headers"]), scope, receive, send)

    async def _route(
        self,
        match: tuple[dict[str, list[Route]], list[str]],
        headers: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        methods, parts = match
        method: str = scope["method"]
        stack = methods.get(method)
        if stack is None:
            if method == "HEAD" and "GET" in methods:
                # The reference's router serves HEAD with GET, then finds no HEAD trigger.
                await _respond(send, 404, b"Not Found", [(b"content-type", b"text/plain")])
            else:
                allow = ", ".join(sorted(methods)).encode()
                await _respond(send, 405, b"", [(b"allow", allow)])
            return
        if self.inflight >= self.limit:
            self.rejected_total += 1
            await _respond(send, 503, _BUSY, [*JSON_HEADERS, (b"retry-after", b"1")])
            return
        self.inflight += 1
        self.requests_total += 1
        route = stack[-1]
        try:
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body:
                await _respond(send, 413, _TOO_LARGE, JSON_HEADERS)
                return
            json_request = req.is_json(headers)
            body: Any = None
            if json_request:
                try:
                    body = req.parse_json_body(await self._read_body(receive))
                except BodyTooLarge:
                    await _respond(send, 413, _TOO_LARGE, JSON_HEADERS)
                    return
            data = req.build_input(
                route,
                method,
                headers,
                req.query_of(scope["query_string"]),
                req.path_params_of(route, parts),
                body,
            )
            if not self.tracing:
                # No SDK installed (the otel module is not loaded): spans would be no-ops, so
                # skip their cost and forward the client's own trace context, if any.
                traceparent = headers.get("traceparent")
                await self._invoke(
                    route, method, headers, data, json_request, traceparent, receive, send
                )
                return
            parent = propagate.extract(headers) if "traceparent" in headers else None
            with tracer.start_as_current_span(
                f"{method} {route.api_path_as_given}", context=parent, kind=trace.SpanKind.SERVER
            ) as span:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                status = await self._invoke(
                    route,
                    method,
                    headers,
                    data,
                    json_request,
                    carrier.get("traceparent"),
                    receive,
                    send,
                )
                span.set_attribute("http.response.status_code", status)
        except ClientGone:
            pass
        finally:
            self.inflight -= 1

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise BodyTooLarge
                chunks.append(chunk)
            if not msg.get("more_body"):
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    async def _pump(self, receive: Receive, channel: Channel) -> None:
        """Stream the raw request body into the ``request_body`` channel."""
        size = 0
        try:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                chunk = msg.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > self.max_body:
                        raise BodyTooLarge
                    await channel.send(bytes(chunk))
                if not msg.get("more_body"):
                    return
        except InvocationError:  # the channel was removed: the request is over
            return
        finally:
            channel.close_nowait()

    async def _invoke(
        self,
        route: Route,
        method: str,
        headers: dict[str, str],
        data: dict[str, Any],
        json_request: bool,
        traceparent: str | None,
        receive: Receive,
        send: Send,
    ) -> int:
        """The condition, then the function; returns the response status."""
        if condition_function(route.trigger.config) is not None:
            try:
                allowed = await condition_allows(
                    self.engine, route.trigger.config, data, traceparent=traceparent
                )
            except Exception as exc:
                await self._error(send, route, method, headers, exc, "condition")
                return 500
            if not allowed:
                await _respond(send, 422, _CONDITION_FAILED, JSON_HEADERS)
                return 422
        channels = self.engine.channels
        try:
            body_channel = channels.create()
        except InvocationError as exc:
            log.warning("HTTP %s %s: %s", method, route.api_path_as_given, exc)
            await _respond(send, 503, _BUSY, JSON_HEADERS)
            return 503
        try:
            response_channel = channels.create()
        except InvocationError as exc:
            channels.remove(body_channel.id)
            log.warning("HTTP %s %s: %s", method, route.api_path_as_given, exc)
            await _respond(send, 503, _BUSY, JSON_HEADERS)
            return 503
        body_channel.claim("write")
        response_channel.claim("read")
        data["request_body"] = body_channel.ref("read")
        data["response"] = response_channel.ref("write")
        loop = self.engine.loop
        deadline = loop.time() + self.timeout
        waker = _Waker(loop, response_channel)
        call = self.engine.start_call(route.function_id, data, traceparent=traceparent)
        call.add_done_callback(waker)
        pump = None
        if not json_request:
            if _has_body(headers):
                pump = loop.create_task(self._pump(receive, body_channel))
                pump.add_done_callback(waker)
            else:  # a GET, say: no body to stream, so no task to stream it
                body_channel.close_nowait()
        timers = [loop.call_at(deadline, waker)]
        returned_null = False
        head = StreamHead()
        try:
            while True:
                if not returned_null and call.done():
                    failure = call.exception()
                    if failure is not None:
                        await self._error(send, route, method, headers, failure, "function")
                        return 500
                    value = call.result()
                    if value is not None:
                        status, payload, out_headers = direct(value)
                        await _respond(send, status, payload, out_headers)
                        return status
                    returned_null = True
                    if not response_channel.sender_claimed:
                        warn = self.config.stream_warning_ms / 1000
                        timers.append(
                            loop.call_later(
                                warn, self._warn_unopened, route, method, response_channel
                            )
                        )
                # Control items set the head; the response starts at the first body chunk
                # or when the writer closes.
                while len(response_channel):
                    item = await response_channel.receive()
                    if item is None or isinstance(item, bytes):
                        waker.disarm()
                        await self._stream(send, receive, head, item, response_channel, pump)
                        return head.status
                    head.control(item)
                if pump is not None and pump.done():
                    if isinstance(pump.exception(), BodyTooLarge):
                        await _respond(send, 413, _TOO_LARGE, JSON_HEADERS)
                        return 413
                    pump = None
                if loop.time() >= deadline:
                    await _respond(send, 504)
                    return 504
                await waker.arm()
        finally:
            waker.disarm()
            for timer in timers:
                timer.cancel()
            _discard(call)
            _discard(pump)
            channels.remove(body_channel.id)
            channels.remove(response_channel.id)

    def _warn_unopened(self, route: Route, method: str, channel: Channel) -> None:
        if not channel.sender_claimed:
            log.warning(
                "function %s (HTTP %s %s) returned nothing and has not opened its "
                "'response' channel; the request gets 504 after %d ms unless it does",
                route.function_id,
                method,
                route.api_path_as_given,
                self.config.default_timeout,
            )

    async def _stream(
        self,
        send: Send,
        receive: Receive,
        head: StreamHead,
        first: bytes | None,
        channel: Channel,
        pump: asyncio.Task[None] | None,
    ) -> None:
        """Send the streamed response; stop when the writer closes or the client goes away."""

        async def forward() -> None:
            await send(
                {"type": "http.response.start", "status": head.status, "headers": head.headers}
            )
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            if first is not None:
                while (item := await channel.receive()) is not None:
                    if isinstance(item, bytes) and item:
                        await send({"type": "http.response.body", "body": item, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            if pump is not None:
                await asyncio.wait({pump})
            while (await receive())["type"] != "http.disconnect":
                pass

        sender = asyncio.ensure_future(forward())
        watcher = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done():
                sender.result()
        finally:
            _discard(sender)
            _discard(watcher)

    async def _error(
        self,
        send: Send,
        route: Route,
        method: str,
        headers: dict[str, str],
        exc: BaseException,
        what: str,
    ) -> None:
        eid = error_id()
        log.error(
            "HTTP %s %s: %s %s failed (error_id %s): %s; request headers %s",
            method,
            route.api_path_as_given,
            what,
            route.function_id if what == "function" else condition_function(route.trigger.config),
            eid,
            exc,
            req.redact(headers),
        )
        await _respond(send, 500, error_body(eid), JSON_HEADERS)
