"""Running an ASGI app inside the engine's event loop: uvicorn (default) or Hypercorn.

The listening socket is bound here, before the server starts, so that a bind error fails the
engine's start-up, ``port: 0`` works, and the bound port is known at once.  Neither server
installs signal handlers: the engine owns SIGINT/SIGTERM and stops the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, Protocol

log = logging.getLogger("iii.rest")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"HTTP API cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class HttpServer(Protocol):
    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def head_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a deadline for each request head.

    uvicorn times out idle keep-alive connections only: a client that starts a request and never
    finishes its headers (slowloris) holds the connection forever.  The timer starts when the
    connection opens and at the first byte of each later request, and stops when the head is
    complete; when it fires the connection is closed.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeadTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def on_headers_complete(self) -> None:
            self._cancel_head_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                log.debug("closing a connection whose request head took over %g s", seconds)
                self.transport.close()

    return HeadTimeoutProtocol


class UvicornServer:
    """uvicorn with httptools (its C parser) on the running loop (uvloop under ``iii``)."""

    def __init__(self, app: Any, host: str, port: int, header_timeout: float) -> None:
        import uvicorn

        self._sock = bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._config = uvicorn.Config(
            app,
            http=head_timeout_protocol(header_timeout),
            lifespan="off",
            # Nothing reads the client address (the function input has none), so the real peer
            # is kept rather than X-Forwarded-For rewritten in.
            proxy_headers=False,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(self._config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # ``_serve`` is ``serve`` without uvicorn's signal capture (the engine owns signals).
        self._task = asyncio.ensure_future(self._server._serve(sockets=[self._sock]))
        self._task.set_name("iii-rest uvicorn")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception as exc:
                log.warning("uvicorn stopped with an error: %s", exc)
        self._sock.close()


class HypercornServer:
    """Hypercorn (HTTP/1.1 and h2c) on the running loop."""

    def __init__(self, app: Any, host: str, port: int, header_timeout: float) -> None:
        from hypercorn.config import Config

        sock = bind(host, port)
        self.port = sock.getsockname()[1]
        self._config = Config()
        # Hypercorn adopts the descriptor and closes it on shutdown.
        self._config.bind = [f"fd://{sock.detach()}"]
        self._config.accesslog = None
        self._config.errorlog = log
        self._config.graceful_timeout = 2
        self._config.include_server_header = False
        # Hypercorn's keep-alive timer runs until a request head is complete, so it is also the
        # slowloris guard.
        self._config.keep_alive_timeout = header_timeout
        self._app = app
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from hypercorn.asyncio import serve

        self._task = asyncio.ensure_future(
            serve(self._app, self._config, shutdown_trigger=self._stopping.wait, mode="asgi")
        )
        self._task.set_name("iii-rest hypercorn")
        # Hypercorn has no "started" flag; the socket already listens, so requests queue in
        # the backlog until it accepts.  Yield once so that it registers its server.
        await asyncio.sleep(0)
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
            except Exception as exc:
                log.warning("hypercorn stopped with an error: %s", exc)


def create_server(kind: str, app: Any, host: str, port: int, header_timeout: float) -> HttpServer:
    if kind == "hypercorn":
        return HypercornServer(app, host, port, header_timeout)
    return UvicornServer(app, host, port, header_timeout)
