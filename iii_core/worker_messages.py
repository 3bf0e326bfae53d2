"""What the engine does with each frame a worker sends.

:meth:`WorkerMessages.handle_frame` is called by the transport for every text frame and every
binary frame.  Calls and results are handled synchronously (the hot path); registration messages
return a coroutine that the transport awaits before reading the next frame, so that one worker's
registrations are applied in the order it sent them.

A frame that is not a valid message is dropped, counted, and logged once per worker; an invalid
``invokefunction`` that carries an ``invocation_id`` is answered with ``invalid_message``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from iii_core import protocol
from iii_core.engine import Engine, WorkerTriggerRegistrator
from iii_core.errors import ProtocolError, RegistrationError, UnknownMessageType
from iii_core.protocol import (
    ErrorBody,
    InvocationResult,
    InvokeFunction,
    Ping,
    Pong,
    Reattach,
    RegisterFunction,
    RegisterService,
    RegisterTrigger,
    RegisterTriggerType,
    RegistrationRejected,
    TriggerRegistrationResult,
    UnregisterFunction,
    UnregisterTrigger,
    UnregisterTriggerType,
    WorkerRegistered,
)
from iii_core.registries import Worker

log = logging.getLogger("iii.worker")

Handler = Callable[[Worker, Any], Awaitable[None] | None]


class WorkerMessages:
    """Dispatches decoded frames to the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        router = engine.router
        self._invoke = router.invoke_from_worker
        self._result = router.result_from_worker
        self._handlers: dict[type, Handler] = {
            RegisterFunction: self._register_function,
            UnregisterFunction: self._unregister_function,
            RegisterTriggerType: self._register_trigger_type,
            UnregisterTriggerType: self._unregister_trigger_type,
            RegisterTrigger: self._register_trigger,
            UnregisterTrigger: self._unregister_trigger,
            TriggerRegistrationResult: self._trigger_registration_result,
            RegisterService: self._register_service,
            Ping: self._ping,
            Pong: _ignore,
            WorkerRegistered: _ignore,
            Reattach: _ignore,
            RegistrationRejected: _ignore,
        }
        self._observers = engine.observers

    def handle_frame(self, worker: Worker, frame: bytes | str) -> Awaitable[None] | None:
        """Handle one JSON frame; may return a coroutine the caller must await."""
        try:
            msg = protocol.decode_message(frame)
        except UnknownMessageType as exc:
            if worker.bad_frames == 0:
                log.warning("worker %s sent %s; ignored", worker.id, exc)
            worker.bad_frames += 1
            return None
        except ProtocolError as exc:
            if isinstance(frame, str) and not frame.strip():
                return None
            self._bad_frame(worker, frame, str(exc))
            return None
        kind = type(msg)
        # ``kind is X`` narrows what mypy cannot see; an ignore costs nothing, a cast is a call.
        if kind is InvokeFunction:
            worker.registered_anything = True
            self._invoke(worker, msg)  # type: ignore[arg-type]
            return None
        if kind is InvocationResult:
            self._result(worker, msg)  # type: ignore[arg-type]
            return None
        worker.registered_anything = True
        return self._handlers[kind](worker, msg)

    def handle_binary(self, worker: Worker, frame: bytes) -> Awaitable[None] | None:
        prefix = protocol.telemetry_prefix(frame)
        if prefix is None:
            return self.handle_frame(worker, frame)
        worker.seen_telemetry = True
        payload = frame[4:]
        for obs in self._observers:
            try:
                obs.telemetry_frame(worker, prefix, payload)
            except Exception as exc:
                log.warning("telemetry observer failed on a %s frame: %s", prefix.decode(), exc)
        return None

    def _bad_frame(self, worker: Worker, frame: bytes | str, reason: str) -> None:
        self.engine.protocol_errors_total += 1
        if worker.bad_frames == 0:
            log.warning(
                "worker %s sent an invalid frame (dropped; further ones are counted, not "
                "logged): %s",
                worker.id,
                reason[:300],
            )
        worker.bad_frames += 1
        for obs in self._observers:
            with contextlib.suppress(Exception):
                obs.protocol_error(worker, reason)
        invocation_id = _salvage_invocation_id(frame)
        if invocation_id is not None:
            worker.conn.send(
                protocol.encode(
                    InvocationResult(
                        invocation_id=invocation_id,
                        function_id=_salvage_str(frame, "function_id"),
                        error=ErrorBody(code="invalid_message", message=reason[:1000]),
                    )
                )
            )

    # ------------------------------------------------------------------ registrations

    def _over_limit(self, worker: Worker, what: str, name: str) -> bool:
        """True (and logged once per worker) when ``worker`` holds as many registrations as
        ``max_registrations_per_worker``: the registries stay bounded whatever a worker sends."""
        held = (
            len(worker.function_ids)
            + len(worker.trigger_ids)
            + len(worker.trigger_type_ids)
            + worker.services_declared
        )
        if held < self.engine.config.max_registrations_per_worker:
            return False
        if not worker.over_registration_limit:
            worker.over_registration_limit = True
            log.warning(
                "worker %s holds %d registrations (max_registrations_per_worker): %s %s and "
                "further registrations are refused",
                worker.id,
                held,
                what,
                name,
            )
        return True

    def _register_function(self, worker: Worker, msg: RegisterFunction) -> Awaitable[None] | None:
        if msg.id not in worker.function_ids and self._over_limit(worker, "function", msg.id):
            return None
        allowed = worker.allowed_registrations
        if allowed is not None and msg.id not in allowed:
            log.warning("worker %s may not register function %s; ignored", worker.id, msg.id)
            return None
        if msg.invocation is not None:
            registrar = self.engine.external_function_registrar
            if registrar is not None:
                return registrar.register(worker, msg)
            log.error(
                "worker %s registered %s as an HTTP-invoked function, which needs the "
                "HTTP functions module; ignored",
                worker.id,
                msg.id,
            )
            return None
        try:
            entry, created = self.engine.functions.add_worker_owner(
                msg.id,
                worker,
                description=msg.description,
                request_format=msg.request_format,
                response_format=msg.response_format,
                metadata=msg.metadata,
            )
        except RegistrationError as exc:
            log.warning("worker %s: %s", worker.id, exc)
            return None
        if created:
            self.engine._function_added(entry)
        return None

    def _unregister_function(self, worker: Worker, msg: UnregisterFunction) -> None:
        registrar = self.engine.external_function_registrar
        if registrar is not None and registrar.unregister(worker, msg.id):
            return
        entry = self.engine.functions.remove_owner(msg.id, worker)
        if entry is not None:
            self.engine._function_removed(entry)

    async def _register_trigger_type(self, worker: Worker, msg: RegisterTriggerType) -> None:
        if msg.id not in worker.trigger_type_ids and self._over_limit(
            worker, "trigger type", msg.id
        ):
            return
        try:
            await self.engine.register_trigger_type(
                msg.id, msg.description, WorkerTriggerRegistrator(worker), worker=worker
            )
        except RegistrationError as exc:
            log.warning("worker %s: %s", worker.id, exc)

    async def _unregister_trigger_type(self, worker: Worker, msg: UnregisterTriggerType) -> None:
        await self.engine.unregister_trigger_type(msg.id, worker=worker)

    async def _register_trigger(self, worker: Worker, msg: RegisterTrigger) -> None:
        if msg.id not in worker.trigger_ids and self._over_limit(worker, "trigger", msg.id):
            worker.conn.send(
                protocol.encode(
                    TriggerRegistrationResult(
                        id=msg.id,
                        trigger_type=msg.trigger_type,
                        function_id=msg.function_id,
                        error=ErrorBody(
                            code="trigger_registration_failed",
                            message="too many registrations for this worker "
                            f"(max_registrations_per_worker="
                            f"{self.engine.config.max_registrations_per_worker})",
                        ),
                    )
                )
            )
            return
        # A rejection was already reported to the worker and logged by the engine.
        with contextlib.suppress(Exception):
            await self.engine.register_trigger(
                msg.trigger_type,
                msg.function_id,
                msg.config,
                trigger_id=msg.id,
                worker=worker,
                metadata=msg.metadata,
            )

    async def _unregister_trigger(self, worker: Worker, msg: UnregisterTrigger) -> None:
        await self.engine.unregister_trigger(msg.id)

    def _trigger_registration_result(self, worker: Worker, msg: TriggerRegistrationResult) -> None:
        if msg.error is not None:
            log.warning(
                "worker %s rejected trigger %s (%s): %s",
                worker.id,
                msg.id,
                msg.trigger_type,
                msg.error.message,
            )

    def _register_service(self, worker: Worker, msg: RegisterService) -> None:
        previous = self.engine.services.declared.get(msg.id)
        if previous is None or previous["worker_id"] != worker.id:
            if self._over_limit(worker, "service", msg.id):
                return
            worker.services_declared += 1
        self.engine.services.declare(
            msg.id,
            {
                "id": msg.id,
                "name": msg.name or msg.id,
                "description": msg.description,
                "parent_service_id": msg.parent_service_id,
                "worker_id": worker.id,
            },
        )

    @staticmethod
    def _ping(worker: Worker, msg: Ping) -> None:
        worker.conn.send(protocol.PONG_FRAME)


def _ignore(worker: Worker, msg: Any) -> None:
    return None


class _Salvage(msgspec.Struct):
    type: Any = None
    invocation_id: Any = None
    function_id: Any = None


def _salvage_head(frame: bytes | str) -> _Salvage | None:
    try:
        return msgspec.json.decode(frame, type=_Salvage)
    except (msgspec.DecodeError, RecursionError):
        return None
    except UnicodeError:
        # Invalid UTF-8 (or lone surrogates): still answer the caller that sent an id.
        if isinstance(frame, str):
            frame = frame.encode("utf-8", "replace")
        return _salvage_head(frame.decode("utf-8", "replace"))


def _salvage_invocation_id(frame: bytes | str) -> str | None:
    head = _salvage_head(frame)
    if head is not None and head.type == "invokefunction" and isinstance(head.invocation_id, str):
        return head.invocation_id
    return None


def _salvage_str(frame: bytes | str, key: str) -> str:
    head = _salvage_head(frame)
    value = getattr(head, key) if head is not None else None
    return value if isinstance(value, str) else ""


__all__ = ["Pong", "WorkerMessages"]
