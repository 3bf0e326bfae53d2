"""Routing calls to whoever owns a function, and results back to whoever asked.

This is the engine's hot path.  A call from a worker is decoded once; its ``data`` stays raw JSON
and is forwarded untouched (plus the spliced ``_caller_worker_id``).  Nothing here logs at info
level, calls a plugin hook or allocates more than one pending record per call.

Rules (``decisions.md``):

* unknown function: ``function_not_found`` at once (only when the caller asked for a reply);
* no engine deadline unless the call (``timeout_ms``), the function (``metadata.timeout_ms``) or
  the engine config (``invocation_timeout_ms``) asks for one; on expiry the caller gets
  ``timeout`` and a late result is dropped;
* fire-and-forget (no ``invocation_id``, or ``action: void``): the target still gets an id, and its
  reply is dropped;
* a worker that disconnects: every call it was handling fails with ``invocation_stopped``, every
  call it was waiting for is dropped;
* pending calls per worker are capped (``too_many_invocations``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from msgspec import UNSET, Raw

from iii_core import protocol
from iii_core.errors import (
    FunctionNotFound,
    InvocationError,
    InvocationFailed,
    InvocationStopped,
    InvocationTimeout,
    TooManyInvocations,
    invocation_error,
)
from iii_core.ids import new_uuid4
from iii_core.protocol import ErrorBody, InvocationResult, InvokeFunction

if TYPE_CHECKING:
    from iii_core.observers import EngineObserver
    from iii_core.registries import FunctionEntry, FunctionRegistry, Worker

log = logging.getLogger("iii.invocations")

ActionHandler = Callable[[str, Any, dict[str, Any], "CallContext"], Awaitable[Any]]
"""Runs an ``invokefunction`` ``action`` (``enqueue``...): ``(function_id, data, action, ctx)``."""


class RemoteRouter(Protocol):
    """Seam for a multi-engine backplane: asked when no local owner has a function."""

    def has_function(self, function_id: str) -> bool: ...

    async def call(self, function_id: str, data: Any, ctx: CallContext) -> Any: ...


class CallContext:
    """What an in-process handler knows about the call it is serving."""

    __slots__ = ("baggage", "caller", "function_id", "invocation_id", "metadata", "traceparent")

    def __init__(
        self,
        function_id: str,
        *,
        caller: Worker | None = None,
        invocation_id: str | None = None,
        traceparent: str | None = None,
        baggage: str | None = None,
        metadata: Any = None,
    ) -> None:
        self.function_id = function_id
        self.caller = caller
        self.invocation_id = invocation_id
        self.traceparent = traceparent
        self.baggage = baggage
        self.metadata = metadata


class Pending:
    """One call in flight to a worker-owned function (or observed in-process call)."""

    __slots__ = (
        "baggage",
        "caller",
        "caller_id",
        "function_id",
        "future",
        "id",
        "observer_state",
        "started",
        "target",
        "timer",
        "traceparent",
    )

    def __init__(
        self,
        pending_id: str,
        function_id: str,
        caller: Worker | None,
        caller_id: str | None,
        target: Worker | None,
        traceparent: str | None,
        baggage: str | None,
    ) -> None:
        self.id = pending_id
        self.function_id = function_id
        self.caller = caller
        self.caller_id = caller_id
        self.target = target
        self.future: asyncio.Future[tuple[Raw | None, ErrorBody | None]] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.started = time.perf_counter()
        self.traceparent = traceparent
        self.baggage = baggage
        self.observer_state: Any = None


def _error(code: str, message: str) -> ErrorBody:
    return ErrorBody(code=code, message=message)


def _not_found(function_id: str) -> ErrorBody:
    return _error("function_not_found", f"Function {function_id} not found")


def _exc_to_error(exc: BaseException) -> ErrorBody:
    if isinstance(exc, InvocationError):
        return ErrorBody(code=exc.code, message=exc.message, stacktrace=exc.stacktrace)
    return ErrorBody(
        code="invocation_failed",
        message=str(exc) or type(exc).__name__,
        stacktrace="".join(traceback.format_exception(exc)),
    )


class InvocationRouter:
    """Pending calls, routing, deadlines and cleanup."""

    def __init__(
        self,
        functions: FunctionRegistry,
        *,
        default_timeout_ms: int | None = None,
        max_pending_per_worker: int = 10_000,
        spawn: Callable[[Awaitable[Any]], asyncio.Future[Any]],
        observers: list[EngineObserver],
    ) -> None:
        self.functions = functions
        self.default_timeout_ms = default_timeout_ms
        self.max_pending_per_worker = max_pending_per_worker
        self.pending: dict[str, Pending] = {}
        self.actions: dict[str, ActionHandler] = {}
        self.remote_router: RemoteRouter | None = None
        self._spawn = spawn
        self._observers = observers
        self.completed_total = 0
        self.rejected_total = 0
        self.module_calls: set[asyncio.Future[Any]] = set()
        """Calls from workers to in-process functions now running (the shutdown grace waits for
        them as for :attr:`pending`)."""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, looked up once: on Python 3.11 each ``get_running_loop`` is a
        ``getpid`` system call."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    # ------------------------------------------------------------------ from workers (hot path)

    def invoke_from_worker(self, caller: Worker, msg: InvokeFunction) -> None:
        """Handle ``invokefunction`` sent by ``caller``."""
        function_id = msg.function_id
        caller_id = msg.invocation_id
        # Checked before any action: ``enqueue`` runs the function later, ``void`` answers now.
        allowed = caller.allowed_functions
        if allowed is not None and function_id not in allowed and not _is_engine_id(function_id):
            if caller_id is not None:
                self._reply(
                    caller,
                    caller_id,
                    function_id,
                    None,
                    _error("forbidden", f"Worker may not call {function_id}"),
                    None,
                )
            return
        action = msg.action
        if action is not None:
            kind = action.get("type")
            if kind == "void":
                if caller_id is not None:
                    caller.conn.send(
                        protocol.encode(
                            InvocationResult(invocation_id=caller_id, function_id=function_id)
                        )
                    )
                caller_id = None
            elif kind is not None:
                self._run_action(caller, msg, str(kind), action)
                return
        entry = self.functions.get(function_id)
        if entry is None:
            if self.remote_router is not None and self.remote_router.has_function(function_id):
                self._spawn(self._run_remote(caller, caller_id, msg))
            elif caller_id is not None:
                self._reply(caller, caller_id, function_id, None, _not_found(function_id), None)
            return
        data = protocol.inject_caller(msg.data, caller.id)
        if entry.handler is not None:
            call = self._spawn(self._run_module(entry, caller, caller_id, data, msg))
            self.module_calls.add(call)
            call.add_done_callback(self.module_calls.discard)
            return
        target = entry.pick_owner()
        if target is None:  # pragma: no cover - entries without owners are removed
            if caller_id is not None:
                self._reply(caller, caller_id, function_id, None, _not_found(function_id), None)
            return
        if (
            len(target.inflight) >= self.max_pending_per_worker
            or len(caller.inflight) >= self.max_pending_per_worker
        ):
            self.rejected_total += 1
            if caller_id is not None:
                self._reply(
                    caller,
                    caller_id,
                    function_id,
                    None,
                    _error(
                        "too_many_invocations",
                        f"Too many pending invocations (limit {self.max_pending_per_worker} "
                        "per worker)",
                    ),
                    None,
                )
            return
        pending_id = caller_id
        if pending_id is None or pending_id in self.pending:
            pending_id = new_uuid4()
        p = Pending(
            pending_id, function_id, caller, caller_id, target, msg.traceparent, msg.baggage
        )
        self.pending[pending_id] = p
        target.inflight.add(pending_id)
        if caller_id is not None:
            caller.inflight.add(pending_id)
        if self._observers:
            for obs in self._observers:
                obs.invocation_started(p)
        timeout_ms = msg.timeout_ms or entry.timeout_ms or self.default_timeout_ms
        if timeout_ms:
            p.timer = self.loop.call_later(timeout_ms / 1000, self._expire, pending_id)
        target.conn.send(
            protocol.encode(
                InvokeFunction(
                    invocation_id=pending_id,
                    function_id=function_id,
                    data=data,
                    traceparent=p.traceparent,
                    baggage=p.baggage,
                    metadata=msg.metadata,
                )
            )
        )

    def result_from_worker(self, worker: Worker, msg: InvocationResult) -> None:
        """Handle ``invocationresult`` sent by the worker that ran a call."""
        p = self.pending.get(msg.invocation_id)
        if p is None or p.target is not worker:
            # Unknown (late, timed out) or not this worker's call: only its target may answer.
            log.debug(
                "result for unknown invocation %s from worker %s", msg.invocation_id, worker.id
            )
            return
        del self.pending[msg.invocation_id]
        worker.inflight.discard(p.id)
        if p.timer is not None:
            p.timer.cancel()
        error = msg.error
        result: Raw | None = None
        if error is None and msg.result is not UNSET and not protocol.is_null(msg.result):
            result = msg.result  # type: ignore[assignment]
        self._finish(p, result, error, msg.traceparent, msg.baggage)

    def _finish(
        self,
        p: Pending,
        result: Raw | None,
        error: ErrorBody | None,
        traceparent: str | None = None,
        baggage: str | None = None,
    ) -> None:
        self.completed_total += 1
        if self._observers:
            for obs in self._observers:
                obs.invocation_finished(p, error)
        caller = p.caller
        if caller is not None:
            caller.inflight.discard(p.id)
            if p.caller_id is not None:
                self._reply(
                    caller,
                    p.caller_id,
                    p.function_id,
                    result,
                    error,
                    p.traceparent or traceparent,
                    baggage,
                )
        elif p.future is not None and not p.future.done():
            p.future.set_result((result, error))

    @staticmethod
    def _reply(
        caller: Worker,
        invocation_id: str,
        function_id: str,
        result: Raw | None,
        error: ErrorBody | None,
        traceparent: str | None,
        baggage: str | None = None,
    ) -> None:
        caller.conn.send(
            protocol.encode(
                InvocationResult(
                    invocation_id=invocation_id,
                    function_id=function_id,
                    result=UNSET if result is None or error is not None else result,
                    error=error,
                    traceparent=traceparent,
                    baggage=baggage,
                )
            )
        )

    def _expire(self, pending_id: str) -> None:
        p = self.pending.pop(pending_id, None)
        if p is None:
            return
        if p.target is not None:
            p.target.inflight.discard(pending_id)
        elapsed_ms = int((time.perf_counter() - p.started) * 1000)
        self._finish(
            p,
            None,
            _error("timeout", f"Invocation of {p.function_id} timed out after {elapsed_ms} ms"),
        )

    async def _run_module(
        self,
        entry: FunctionEntry,
        caller: Worker,
        caller_id: str | None,
        data: Raw,
        msg: InvokeFunction,
    ) -> None:
        ctx = CallContext(
            entry.id,
            caller=caller,
            invocation_id=caller_id,
            traceparent=msg.traceparent,
            baggage=msg.baggage,
            metadata=msg.metadata,
        )
        try:
            result, error = await self._observed_module_call(entry, caller, data, ctx)
        except asyncio.CancelledError:  # the engine stopped past its grace period
            if caller_id is not None:
                stopped = _error("invocation_stopped", "Invocation stopped: engine shutting down")
                self._reply(caller, caller_id, entry.id, None, stopped, ctx.traceparent)
            raise
        if caller_id is not None:
            self._reply(caller, caller_id, entry.id, result, error, ctx.traceparent)

    async def _observed_module_call(
        self, entry: FunctionEntry, caller: Worker | None, data: Raw | Any, ctx: CallContext
    ) -> tuple[Raw | None, ErrorBody | None]:
        p: Pending | None = None
        if self._observers:
            p = Pending("", entry.id, caller, None, None, ctx.traceparent, ctx.baggage)
            for obs in self._observers:
                obs.invocation_started(p)
            ctx.traceparent = p.traceparent
        error: ErrorBody | None = None
        result: Raw | None = None
        try:
            value = await entry.handler(  # type: ignore[misc]
                protocol.raw_to_python(data) if isinstance(data, Raw) else data, ctx
            )
            if value is not None:
                result = protocol.raw(value)
        except Exception as exc:
            error = _exc_to_error(exc)
            if not isinstance(exc, InvocationError):
                log.warning("engine function %s failed: %s", entry.id, exc, exc_info=exc)
        if p is not None:
            for obs in self._observers:
                obs.invocation_finished(p, error)
        return result, error

    def _run_action(
        self, caller: Worker, msg: InvokeFunction, kind: str, action: dict[str, Any]
    ) -> None:
        handler = self.actions.get(kind)
        caller_id = msg.invocation_id
        if handler is None:
            if caller_id is not None:
                hint = " (install and configure the iii-queue module)" if kind == "enqueue" else ""
                self._reply(
                    caller,
                    caller_id,
                    msg.function_id,
                    None,
                    _error("unsupported_action", f"Action {kind!r} is not available{hint}"),
                    None,
                )
            return

        async def run(data: Any, ctx: CallContext) -> Any:
            return await handler(msg.function_id, data, action, ctx)

        data = protocol.raw_to_python(protocol.inject_caller(msg.data, caller.id))
        self._spawn(self._answer_in_process(caller, caller_id, msg, data, run))

    async def _run_remote(self, caller: Worker, caller_id: str | None, msg: InvokeFunction) -> None:
        assert self.remote_router is not None
        router = self.remote_router

        async def run(data: Any, ctx: CallContext) -> Any:
            return await router.call(msg.function_id, data, ctx)

        await self._answer_in_process(caller, caller_id, msg, protocol.raw_to_python(msg.data), run)

    async def _answer_in_process(
        self,
        caller: Worker,
        reply_id: str | None,
        msg: InvokeFunction,
        data: Any,
        run: Callable[[Any, CallContext], Awaitable[Any]],
    ) -> None:
        """Serve a worker's call in-process (an action or a remote route); answer ``reply_id``."""
        ctx = CallContext(
            msg.function_id,
            caller=caller,
            invocation_id=reply_id,
            traceparent=msg.traceparent,
            baggage=msg.baggage,
            metadata=msg.metadata,
        )
        result: Raw | None = None
        error: ErrorBody | None = None
        try:
            value = await run(data, ctx)
            if value is not None:
                result = protocol.raw(value)
        except Exception as exc:
            error = _exc_to_error(exc)
        if reply_id is not None:
            self._reply(caller, reply_id, msg.function_id, result, error, None)

    # ------------------------------------------------------------------ from modules

    async def call(
        self,
        function_id: str,
        data: Any,
        *,
        timeout: float | None = None,
        traceparent: str | None = None,
        baggage: str | None = None,
        metadata: Any = None,
    ) -> Any:
        """Call a function from inside the engine and return its decoded result.

        Raises the :class:`~iii_core.errors.InvocationError` subclass matching the failure.
        ``timeout`` (seconds) overrides the function's and the engine's default deadline.
        """
        entry = self.functions.get(function_id)
        ctx = CallContext(function_id, traceparent=traceparent, baggage=baggage, metadata=metadata)
        if entry is None:
            if self.remote_router is not None and self.remote_router.has_function(function_id):
                return await self.remote_router.call(function_id, data, ctx)
            raise FunctionNotFound(f"Function {function_id} not found")
        if timeout is None:
            ms = entry.timeout_ms or self.default_timeout_ms
            timeout = ms / 1000 if ms else None
        if entry.handler is not None:
            try:
                result, error = await asyncio.wait_for(
                    self._observed_module_call(entry, None, data, ctx), timeout
                )
            except TimeoutError:
                raise InvocationTimeout(
                    f"Invocation of {function_id} timed out after {timeout} s"
                ) from None
        else:
            result, error = await self._call_worker(entry, data, ctx, timeout)
        if error is not None:
            raise invocation_error(error.code, error.message, error.stacktrace)
        return protocol.raw_to_python(result)

    def start(
        self,
        function_id: str,
        data: Any,
        *,
        traceparent: str | None = None,
        baggage: str | None = None,
        metadata: Any = None,
    ) -> asyncio.Future[Any]:
        """Start a call and return a future of its decoded result (or its ``InvocationError``).

        Same as :meth:`call`, but a call to a worker-owned function runs without a task of its
        own: a caller that waits for several things at once (the HTTP module races the result
        against the response channel) adds a done-callback instead.  Cancelling the future
        drops the pending call.
        """
        entry = self.functions.get(function_id)
        if entry is None or entry.handler is not None:
            return self.loop.create_task(
                self.call(
                    function_id, data, traceparent=traceparent, baggage=baggage, metadata=metadata
                )
            )
        ctx = CallContext(function_id, traceparent=traceparent, baggage=baggage, metadata=metadata)
        ms = entry.timeout_ms or self.default_timeout_ms
        loop = self.loop
        out: asyncio.Future[Any] = loop.create_future()
        try:
            inner = self._start_worker_call(entry, data, ctx, ms / 1000 if ms else None)
        except InvocationError as exc:
            out.set_exception(exc)
            return out

        def settle(done: asyncio.Future[tuple[Raw | None, ErrorBody | None]]) -> None:
            if out.done() or done.cancelled():
                return
            result, error = done.result()
            if error is not None:
                out.set_exception(invocation_error(error.code, error.message, error.stacktrace))
            else:
                out.set_result(protocol.raw_to_python(result))

        def forward_cancel(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled():
                inner.cancel()

        inner.add_done_callback(settle)
        out.add_done_callback(forward_cancel)
        return out

    async def _call_worker(
        self, entry: FunctionEntry, data: Any, ctx: CallContext, timeout: float | None
    ) -> tuple[Raw | None, ErrorBody | None]:
        return await self._start_worker_call(entry, data, ctx, timeout)

    def _start_worker_call(
        self, entry: FunctionEntry, data: Any, ctx: CallContext, timeout: float | None
    ) -> asyncio.Future[tuple[Raw | None, ErrorBody | None]]:
        """Send the call to an owner; the future resolves when it answers, times out or stops.

        Cancelling the future drops the pending call (a late answer is then ignored).
        """
        target = entry.pick_owner()
        if target is None:  # pragma: no cover
            raise FunctionNotFound(f"Function {entry.id} not found")
        if len(target.inflight) >= self.max_pending_per_worker:
            self.rejected_total += 1
            raise TooManyInvocations(
                f"Too many pending invocations on the worker serving {entry.id} "
                f"(limit {self.max_pending_per_worker})"
            )
        pending_id = new_uuid4()
        p = Pending(pending_id, entry.id, None, None, target, ctx.traceparent, ctx.baggage)
        loop = self.loop
        future: asyncio.Future[tuple[Raw | None, ErrorBody | None]] = loop.create_future()
        p.future = future
        self.pending[pending_id] = p
        target.inflight.add(pending_id)
        if self._observers:
            for obs in self._observers:
                obs.invocation_started(p)
        if timeout is not None:
            p.timer = loop.call_later(timeout, self._expire, pending_id)

        def dropped(fut: asyncio.Future[tuple[Raw | None, ErrorBody | None]]) -> None:
            if fut.cancelled() and self.pending.pop(pending_id, None) is not None:
                target.inflight.discard(pending_id)
                if p.timer is not None:
                    p.timer.cancel()

        future.add_done_callback(dropped)
        target.conn.send(
            protocol.encode(
                InvokeFunction(
                    invocation_id=pending_id,
                    function_id=entry.id,
                    data=data if isinstance(data, Raw) else protocol.raw(data),
                    traceparent=p.traceparent,
                    baggage=p.baggage,
                    metadata=ctx.metadata,
                )
            )
        )
        return future

    def call_void(
        self,
        function_id: str,
        data: Any,
        *,
        traceparent: str | None = None,
        baggage: str | None = None,
    ) -> None:
        """Fire-and-forget call from inside the engine; failures are logged at debug level."""

        async def run() -> None:
            try:
                await self.call(function_id, data, traceparent=traceparent, baggage=baggage)
            except InvocationError as exc:
                log.debug("fire-and-forget call to %s failed: %s", function_id, exc)

        self._spawn(run())

    # ------------------------------------------------------------------ cleanup

    def worker_gone(self, worker: Worker) -> None:
        """Stop every call ``worker`` was handling; drop every call it was waiting for."""
        for pending_id in list(worker.inflight):
            p = self.pending.pop(pending_id, None)
            if p is None:
                continue
            if p.timer is not None:
                p.timer.cancel()
            if p.target is worker:
                if p.caller is not worker:
                    self._finish(p, None, _error("invocation_stopped", "Invocation stopped"))
                elif self._observers:
                    for obs in self._observers:
                        obs.invocation_finished(
                            p, _error("invocation_stopped", "Invocation stopped")
                        )
            else:
                if p.target is not None:
                    p.target.inflight.discard(pending_id)
                if self._observers:
                    for obs in self._observers:
                        obs.invocation_finished(p, _error("invocation_stopped", "Caller gone"))
        worker.inflight.clear()

    async def stop_module_calls(self) -> None:
        """Cancel the in-process calls workers are waiting for (engine shutdown after the grace
        period); each caller is answered ``invocation_stopped`` before this returns."""
        calls = list(self.module_calls)
        for call in calls:
            call.cancel()
        if calls:
            await asyncio.wait(calls, timeout=5)

    def stop_all(self, reason: str = "Invocation stopped") -> None:
        """Fail every pending call (engine shutdown after the grace period)."""
        for pending_id in list(self.pending):
            p = self.pending.pop(pending_id)
            if p.timer is not None:
                p.timer.cancel()
            if p.target is not None:
                p.target.inflight.discard(pending_id)
            self._finish(p, None, _error("invocation_stopped", reason))


def _is_engine_id(function_id: str) -> bool:
    return function_id.startswith("engine::")


__all__ = [
    "ActionHandler",
    "CallContext",
    "InvocationFailed",
    "InvocationRouter",
    "InvocationStopped",
    "Pending",
    "RemoteRouter",
]
