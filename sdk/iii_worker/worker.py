"""The worker: one engine connection that serves functions and makes calls.

Lifecycle: a background task connects, replays every registration (from
:class:`~iii_worker.registrations.Registrations`, the only record of them), reports the worker's
metadata through ``engine::workers::register`` (fire-and-forget), then reads frames until the
connection ends.  Whatever the reason (a drop, a clean 1000/1001 close, an engine restart) it
fails every pending call at once and reconnects with backoff, unless the worker is closing.

Every frame is a message of :mod:`iii_core.protocol`, the same module the engine uses; payloads
(``data``, ``result``) are encoded separately as :class:`msgspec.Raw` JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from iii_core.errors import ProtocolError, UnknownMessageType
from iii_core.protocol import (
    InvocationResult,
    InvokeFunction,
    Ping,
    Pong,
    RegisterFunction,
    RegisterTrigger,
    RegisterTriggerType,
    RegistrationRejected,
    UnregisterFunction,
    UnregisterTrigger,
    UnregisterTriggerType,
    WorkerRegistered,
    decode_message,
    encode,
    raw_to_python,
)
from iii_worker._version import __version__
from iii_worker.channels import Channel, ChannelReader, ChannelWriter
from iii_worker.context import current_invocation
from iii_worker.errors import (
    ConnectionLostError,
    InvocationError,
    InvocationTimeoutError,
    NotConnectedError,
    error_from_body,
)
from iii_worker.reconnect import ConnectionState, ReconnectConfig
from iii_worker.registrations import (
    FunctionEntry,
    Handler,
    Registrations,
    TriggerHandler,
    TriggerTypeEntry,
    is_async_handler,
    wants_context,
)
from iii_worker.serving import Serving, encode_payload
from iii_worker.writer import FrameWriter

log = logging.getLogger("iii_worker")

DEFAULT_URL: Final = "ws://127.0.0.1:49134"
WORKERS_REGISTER: Final = "engine::workers::register"
_HANDSHAKE_TIMEOUT: Final = 10.0

H = TypeVar("H", bound=Handler)
StateListener = Callable[[ConnectionState], None]


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A registered function; ``unregister()`` removes it here and on the engine."""

    id: str
    _worker: Worker

    def unregister(self) -> None:
        self._worker._unregister_function(self.id)


@dataclass(frozen=True, slots=True)
class TriggerRef:
    """A registered trigger; ``unregister()`` removes it here and on the engine."""

    id: str
    trigger_type: str
    function_id: str
    _worker: Worker

    def unregister(self) -> None:
        self._worker._unregister_trigger(self.id)


@dataclass(frozen=True, slots=True)
class TriggerTypeRef:
    """A trigger type this worker provides; ``unregister()`` stops providing it."""

    id: str
    _worker: Worker

    def unregister(self) -> None:
        self._worker._unregister_trigger_type(self.id)


class Worker(Serving):
    """A connection to the engine.  Create it with :func:`connect` or :func:`init`.

    All methods must be called from the event loop the worker was connected on, except
    :meth:`call_sync` (for sync handlers, which run in threads).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str | None = None,
        reconnect: ReconnectConfig | None = None,
        call_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        max_pending_calls: int = 10_000,
        max_queued_messages: int = 1_000,
        send_high_water: int = 1_024,
    ) -> None:
        self.url = url or os.environ.get("III_URL") or DEFAULT_URL
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"engine URL must start with ws:// or wss://, got {self.url!r}")
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.reconnect = reconnect or ReconnectConfig()
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.headers = headers
        self.max_pending_calls = max_pending_calls
        self.send_high_water = send_high_water
        self.worker_id: str | None = None
        """The id the engine gave the current connection (a new one after each reconnect)."""

        self._registrations = Registrations()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._queued: deque[bytes] = deque(maxlen=max_queued_messages)
        self._listeners: list[StateListener] = []
        self._state = ConnectionState.DISCONNECTED
        self._ws: ClientConnection | None = None
        self._writer: FrameWriter | None = None
        self._connected = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def connect(self, timeout: float | None = None) -> Worker:
        """Start the connection and wait until it is up and every registration was sent.

        Raises :class:`NotConnectedError` (and closes the worker) when the first connection does
        not succeed within ``timeout`` (default ``connect_timeout``) or retries run out.
        """
        if self._run_task is None:
            self._loop = asyncio.get_running_loop()
            self._closing = False
            self._run_task = asyncio.create_task(self._run(), name=f"iii-worker {self.name}")
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            await asyncio.wait(
                {waiter, self._run_task},
                timeout=self.connect_timeout if timeout is None else timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
        if not self._connected.is_set():
            await self.close()
            raise NotConnectedError(f"could not connect to {self.url}")
        return self

    def __await__(self) -> Generator[Any, None, Worker]:
        return self.connect().__await__()

    async def __aenter__(self) -> Worker:
        if not self._connected.is_set():
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (code 1000), stop reconnecting, fail pending calls."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._run_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._run_task), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._run_task.cancel()
            except Exception as exc:  # already logged by the task
                log.debug("connection task ended with %r", exc)
        for task in list(self._tasks):
            task.cancel()
        self._fail_pending(NotConnectedError("worker closed"))
        self._set_state(ConnectionState.DISCONNECTED)

    async def run_forever(self) -> None:
        """Wait until the worker is closed (or gives up reconnecting)."""
        if self._run_task is None:
            await self.connect()
        assert self._run_task is not None
        await asyncio.shield(self._run_task)

    def on_connection_state(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(state)`` on every state change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a listener must not break the connection
                log.exception("connection state listener failed")

    async def _run(self) -> None:
        failures = 0
        ever_connected = False
        delay_attempt = 0
        while not self._closing:
            if delay_attempt:
                await asyncio.sleep(self.reconnect.delay(delay_attempt))
                if self._closing:
                    break
            self._set_state(
                ConnectionState.RECONNECTING if ever_connected else ConnectionState.CONNECTING
            )
            try:
                ws = await websockets.connect(
                    self.url,
                    max_size=None,
                    compression=None,
                    proxy=None,
                    open_timeout=_HANDSHAKE_TIMEOUT,
                    additional_headers=self.headers,
                )
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                failures += 1
                limit = self.reconnect.max_retries
                if not self.reconnect.enabled or (limit is not None and failures > limit):
                    log.error("could not connect to %s: %s; giving up", self.url, exc)
                    self._set_state(ConnectionState.FAILED)
                    self._fail_pending(NotConnectedError(f"could not connect to {self.url}"))
                    return
                log.info("could not connect to %s (%s); retrying", self.url, exc)
                delay_attempt = failures
                continue
            failures = 0
            ever_connected = True
            await self._serve(ws)
            if self._closing:
                break
            if not self.reconnect.enabled:
                self._set_state(ConnectionState.DISCONNECTED)
                return
            self._set_state(ConnectionState.RECONNECTING)
            delay_attempt = 1

    async def _serve(self, ws: ClientConnection) -> None:
        """Run one connection: handshake, replay, read loop, then clean up after it."""
        self._ws = ws
        writer = FrameWriter(ws, self.send_high_water)
        writer_task: asyncio.Task[None] | None = None
        try:
            first = await asyncio.wait_for(ws.recv(), _HANDSHAKE_TIMEOUT)
            self._dispatch(first)
            writer_task = asyncio.create_task(writer.run())
            # Synchronous from here to ``_writer = writer``: no registration can slip between
            # the replay and the switch to sending registrations directly.
            for message in self._registrations.replay():
                writer.put_nowait(encode(message))
            while self._queued:
                writer.put_nowait(self._queued.popleft())
            metadata = encode_payload(self._metadata())
            writer.put_nowait(encode(InvokeFunction(function_id=WORKERS_REGISTER, data=metadata)))
            self._writer = writer
            self._connected.set()
            self._set_state(ConnectionState.CONNECTED)
            log.info("connected to %s as worker %s", self.url, self.worker_id)
            async for frame in ws:
                self._dispatch(frame)
        except (websockets.ConnectionClosed, TimeoutError, OSError) as exc:
            log.debug("connection ended: %r", exc)
        except Exception:  # a bug in dispatch must not kill the worker
            log.exception("connection to %s failed", self.url)
        finally:
            self._ws = None
            self._writer = None
            self._connected.clear()
            writer.stop()
            if writer_task is not None:
                writer_task.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
            code = ws.close_code
            if not self._closing:
                log.warning("connection to %s lost (close code %s)", self.url, code)
            self._fail_pending(
                ConnectionLostError(f"connection to the engine lost (close code {code})")
            )
            await self._stop_active_triggers()

    def _fail_pending(self, error: InvocationError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _metadata(self) -> dict[str, Any]:
        return {
            "runtime": "python",
            "version": __version__,
            "name": self.name,
            "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
            "pid": os.getpid(),
            "telemetry": {"language": "python", "framework": "iii-worker"},
        }

    # ------------------------------------------------------------------ sending

    def _send_registration(self, message: Any) -> None:
        """Send now when connected; otherwise the next connection's replay sends it."""
        if self._writer is not None:
            self._writer.put_nowait(encode(message))

    async def _current_writer(self) -> FrameWriter:
        """The live connection's writer with room for a frame, waiting for a (re)connect."""
        while True:
            writer = self._writer
            if writer is not None and writer.alive:
                if not writer.full:
                    return writer
                await writer.wait_room()
                continue
            if self._closing or self._run_task is None or self._run_task.done():
                raise NotConnectedError(f"worker is not connected to {self.url} ({self._state})")
            waiter = asyncio.ensure_future(self._connected.wait())
            try:
                await asyncio.wait({waiter, self._run_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    # ------------------------------------------------------------------ calls

    async def call(
        self,
        function_id: str,
        data: Any = None,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        traceparent: str | None = None,
        baggage: str | None = None,
    ) -> Any:
        """Call a function on any worker (or engine module) and return its result.

        Raises a subclass of :class:`InvocationError`: ``FunctionNotFoundError``,
        ``InvocationFailedError`` (the handler raised), ``InvocationTimeoutError`` (also a
        ``TimeoutError``), ``InvocationStoppedError`` / ``ConnectionLostError`` (also
        ``ConnectionError``) when a connection drops while the call is pending.

        Inside a handler the incoming ``traceparent``/``baggage`` are forwarded unless given.
        The call waits for a connection while the worker is reconnecting (within ``timeout``).
        """
        if len(self._pending) >= self.max_pending_calls:
            raise InvocationError(
                f"too many pending calls (limit {self.max_pending_calls})", code="too_many_calls"
            )
        timeout = self.call_timeout if timeout is None else timeout
        invocation_id = str(uuid.uuid4())
        message = self._invoke_message(
            function_id, data, invocation_id, metadata, traceparent, baggage, timeout
        )
        frame = encode(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                writer = await self._current_writer()
                self._pending[invocation_id] = future
                writer.put_nowait(frame)
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception() from None  # type: ignore[misc]
            raise InvocationTimeoutError(
                f"no answer from {function_id} within {timeout} s", function_id=function_id
            ) from None
        finally:
            if self._pending.get(invocation_id) is future:
                del self._pending[invocation_id]

    async def call_void(
        self,
        function_id: str,
        data: Any = None,
        *,
        metadata: Any = None,
        traceparent: str | None = None,
        baggage: str | None = None,
    ) -> None:
        """Fire-and-forget: no ``invocation_id``, no answer, no error.

        While the worker is reconnecting the message is queued (at most ``max_queued_messages``,
        oldest dropped) and sent after the registrations on the next connection.
        """
        if self._closing or self._run_task is None:
            raise NotConnectedError("worker is not connected (call connect() first)")
        frame = encode(
            self._invoke_message(function_id, data, None, metadata, traceparent, baggage, None)
        )
        writer = self._writer
        if writer is None or not writer.alive:
            if len(self._queued) == self._queued.maxlen:
                log.warning("offline queue full; dropping the oldest fire-and-forget call")
            self._queued.append(frame)
            return
        if writer.full:
            await writer.wait_room()
        writer.put_nowait(frame)

    def call_sync(self, function_id: str, data: Any = None, **kwargs: Any) -> Any:
        """:meth:`call` from another thread (for example inside a sync handler); blocks."""
        if self._loop is None:
            raise NotConnectedError("worker is not connected (call connect() first)")
        ctx = current_invocation()
        if ctx is not None:
            kwargs.setdefault("traceparent", ctx.traceparent)
            kwargs.setdefault("baggage", ctx.baggage)
        call = self.call(function_id, data, **kwargs)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def _invoke_message(
        self,
        function_id: str,
        data: Any,
        invocation_id: str | None,
        metadata: Any,
        traceparent: str | None,
        baggage: str | None,
        timeout: float | None,
    ) -> InvokeFunction:
        ctx = current_invocation()
        if ctx is not None:
            traceparent = traceparent or ctx.traceparent
            baggage = baggage or ctx.baggage
        return InvokeFunction(
            invocation_id=invocation_id,
            function_id=function_id,
            data=encode_payload(data),
            traceparent=traceparent,
            baggage=baggage,
            metadata=metadata,
            timeout_ms=max(1, int(timeout * 1000)) if timeout is not None else None,
        )

    async def list_functions(self) -> list[dict[str, Any]]:
        """``engine::functions::list``: the functions registered on the engine."""
        result = await self.call("engine::functions::list", {})
        return list(result.get("functions", []))

    async def list_workers(self) -> list[dict[str, Any]]:
        """``engine::workers::list``: the workers connected to the engine."""
        result = await self.call("engine::workers::list", {})
        return list(result.get("workers", []))

    async def create_channel(self, buffer_size: int | None = None) -> Channel:
        """Create a data channel (``engine::channels::create``) and return both ends."""
        refs = await self.call("engine::channels::create", {"buffer_size": buffer_size})
        return Channel(
            writer=ChannelWriter(self.url, refs["writer"]),
            reader=ChannelReader(self.url, refs["reader"]),
        )

    # ------------------------------------------------------------------ registration

    def register_function(
        self,
        function_id: str,
        handler: Handler,
        *,
        description: str | None = None,
        request_format: Any = None,
        response_format: Any = None,
        metadata: Any = None,
    ) -> FunctionRef:
        """Serve ``function_id`` with ``handler``: ``(data)`` or ``(data, ctx)``, sync or async.

        Sync handlers run in a thread (``asyncio.to_thread``).  The handler's return value is
        the result; raising gives the caller ``invocation_failed`` (or the code of a raised
        :class:`InvocationError`).  ``StreamChannelRef`` dicts in ``data`` arrive as
        :class:`ChannelReader` / :class:`ChannelWriter` objects.
        """
        message = RegisterFunction(
            id=function_id,
            description=description,
            request_format=request_format,
            response_format=response_format,
            metadata=metadata,
        )
        self._registrations.add_function(
            FunctionEntry(
                function_id, handler, wants_context(handler), is_async_handler(handler), message
            )
        )
        self._send_registration(message)
        return FunctionRef(function_id, self)

    def function(
        self,
        function_id: str,
        *,
        description: str | None = None,
        request_format: Any = None,
        response_format: Any = None,
        metadata: Any = None,
    ) -> Callable[[H], H]:
        """Decorator form of :meth:`register_function`."""

        def decorate(handler: H) -> H:
            self.register_function(
                function_id,
                handler,
                description=description,
                request_format=request_format,
                response_format=response_format,
                metadata=metadata,
            )
            return handler

        return decorate

    def _unregister_function(self, function_id: str) -> None:
        if self._registrations.functions.pop(function_id, None) is not None:
            self._send_registration(UnregisterFunction(id=function_id))

    def register_trigger(
        self, trigger_type: str, function_id: str, config: Any = None, *, metadata: Any = None
    ) -> TriggerRef:
        """Bind ``function_id`` to a trigger of ``trigger_type`` (``http``, ``cron``, ...)."""
        message = RegisterTrigger(
            id=str(uuid.uuid4()),
            trigger_type=trigger_type,
            function_id=function_id,
            config=config,
            metadata=metadata,
        )
        self._registrations.add_trigger(message)
        self._send_registration(message)
        return TriggerRef(message.id, trigger_type, function_id, self)

    def _unregister_trigger(self, trigger_id: str) -> None:
        message = self._registrations.triggers.pop(trigger_id, None)
        if message is not None:
            self._send_registration(
                UnregisterTrigger(id=trigger_id, trigger_type=message.trigger_type)
            )

    def register_trigger_type(
        self, trigger_type: str, description: str, handler: TriggerHandler
    ) -> TriggerTypeRef:
        """Provide trigger type ``trigger_type``: the engine forwards every trigger of that type
        to ``handler.register_trigger`` / ``handler.unregister_trigger`` (sync ones run in a
        thread).  The handler fires a trigger by calling its ``function_id``."""
        message = RegisterTriggerType(id=trigger_type, description=description)
        self._registrations.add_trigger_type(TriggerTypeEntry(trigger_type, handler, message))
        self._send_registration(message)
        return TriggerTypeRef(trigger_type, self)

    def _unregister_trigger_type(self, trigger_type: str) -> None:
        entry = self._registrations.trigger_types.pop(trigger_type, None)
        if entry is not None:
            self._send_registration(UnregisterTriggerType(id=trigger_type))

    # ------------------------------------------------------------------ receiving

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = decode_message(frame)
        except UnknownMessageType as exc:
            log.debug("ignoring message of unknown type %r", exc.message_type)
            return
        except ProtocolError as exc:
            log.warning("ignoring a malformed frame from the engine: %s", exc)
            return
        if isinstance(message, InvocationResult):
            future = self._pending.pop(message.invocation_id, None)
            if future is None or future.done():
                return
            if message.error is not None:
                future.set_exception(error_from_body(message.error, message.function_id))
            else:
                future.set_result(raw_to_python(message.result))
        elif isinstance(message, InvokeFunction):
            self._spawn(self._handle_invoke(message))
        elif isinstance(message, RegisterTrigger):
            self._spawn(self._handle_register_trigger(message))
        elif isinstance(message, UnregisterTrigger):
            self._spawn(self._handle_unregister_trigger(message))
        elif isinstance(message, WorkerRegistered):
            self.worker_id = message.worker_id
        elif isinstance(message, RegistrationRejected):
            log.error(
                "engine rejected a registration: %s (function %s)",
                message.code,
                message.function_id,
            )
        elif isinstance(message, Ping) and self._writer is not None:
            self._writer.put_nowait(encode(Pong()))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def init(url: str | None = None, **options: Any) -> Worker:
    """Create a worker without connecting (no event loop needed); ``await worker.connect()``."""
    return Worker(url, **options)


def connect(
    url: str | None = None,
    *,
    name: str | None = None,
    reconnect: ReconnectConfig | None = None,
    call_timeout: float = 30.0,
    connect_timeout: float = 30.0,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> Worker:
    """A worker for ``url`` (default ``$III_URL`` or ``ws://127.0.0.1:49134``).

    Use it as ``async with connect(url) as worker:`` or ``worker = await connect(url)``.
    """
    return Worker(
        url,
        name=name,
        reconnect=reconnect,
        call_timeout=call_timeout,
        connect_timeout=connect_timeout,
        headers=headers,
        **options,
    )
