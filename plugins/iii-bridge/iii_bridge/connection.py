"""The bridge's connection to the remote engine: one ``iii_worker`` worker at a time.

Each connection is a fresh :class:`iii_worker.Worker` with the SDK's own reconnect turned off; this
loop reconnects instead, with the SDK's backoff policy.  That keeps shutdown prompt (the SDK's
``close()`` waits for a backoff sleep to end, up to 5 s) and lets the first failure be logged as
one warning while the remote engine is down.  The exposed functions are registered on every new
worker, which sends them as part of its connection handshake, so they come back after every
reconnect.  Before handing the URL to the SDK the loop checks that the remote port accepts TCP
connections: a refused connect is the common case (remote engine down) and costs no SDK error
log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

from iii_worker import InvocationContext, NotConnectedError, ReconnectConfig, Worker

log = logging.getLogger("iii.bridge")

ExposedHandler = Callable[[Any, InvocationContext], Awaitable[Any]]

_HANDSHAKE_TIMEOUT: Final = 10.0


class RemoteConnection:
    """Keeps one worker connected to ``url`` until cancelled; :attr:`worker` is the live one."""

    def __init__(
        self,
        url: str,
        name: str,
        exposed: dict[str, ExposedHandler],
        backoff: ReconnectConfig,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.headers = headers
        self.name = name
        self.exposed = exposed
        self.backoff = backoff
        self.worker: Worker | None = None
        """The connected worker, or ``None`` while (re)connecting."""
        self.connections = 0
        """Connections made so far (a reconnect counts)."""

    @property
    def connected(self) -> bool:
        return self.worker is not None and self.worker.connected

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff; runs until cancelled."""
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(self.backoff.delay(failures))
            if await self._session():
                failures = 1  # a lost connection waits the first backoff step, then retries
                log.warning("connection to the remote engine %s lost; reconnecting", self.url)
                continue
            failures += 1
            if failures == 1:
                log.warning("remote engine %s is unreachable; retrying in the background", self.url)

    async def _session(self) -> bool:
        """One connection, served until it ends; ``False`` when it could not be made."""
        worker = Worker(
            self.url,
            name=self.name,
            reconnect=ReconnectConfig(enabled=False),
            connect_timeout=_HANDSHAKE_TIMEOUT,
            headers=self.headers,
        )
        for function_id, handler in self.exposed.items():
            worker.register_function(function_id, handler)
        try:
            if not await _accepts_tcp(self.url):
                return False
            try:
                await worker.connect()
            except NotConnectedError:
                return False
            self.connections += 1
            self.worker = worker
            log.info("bridge connected to the remote engine %s as %s", self.url, worker.worker_id)
            await worker.run_forever()
            return True
        finally:
            self.worker = None
            await worker.close()


async def _accepts_tcp(url: str) -> bool:
    """Whether the host and port of ``url`` accept a TCP connection (closed at once)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        async with asyncio.timeout(_HANDSHAKE_TIMEOUT):
            _reader, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
