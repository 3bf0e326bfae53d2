"""The serving side of a worker: running handlers for incoming invocations and the trigger
callbacks of the trigger types it provides, and answering the engine.

Kept apart from :mod:`iii_worker.worker` (connection, calls, registration) so that each file holds
one concept; :class:`~iii_worker.worker.Worker` inherits it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, Raw

from iii_core.protocol import (
    ErrorBody,
    InvocationResult,
    InvokeFunction,
    RegisterTrigger,
    TriggerRegistrationResult,
    UnregisterTrigger,
    encode,
    raw_to_python,
)
from iii_worker.channels import encode_hook, resolve_channels
from iii_worker.context import InvocationContext, set_current
from iii_worker.errors import InvocationError
from iii_worker.registrations import Registrations, TriggerConfig, is_async_handler
from iii_worker.writer import FrameWriter

log = logging.getLogger("iii_worker")


def encode_payload(value: Any) -> Raw:
    """JSON for ``data``/``result``; channel ends become their refs."""
    try:
        return Raw(msgspec.json.encode(value, enc_hook=encode_hook))
    except (TypeError, NotImplementedError) as exc:
        raise InvocationError(str(exc), code="serialization_error") from exc


class Serving:
    """Handlers and trigger callbacks; needs the worker's registrations, URL and writer."""

    url: str
    _registrations: Registrations
    _writer: FrameWriter | None

    async def _handle_invoke(self, message: InvokeFunction) -> None:
        writer = self._writer  # the reply belongs on the connection that asked
        ctx = InvocationContext(
            function_id=message.function_id,
            invocation_id=message.invocation_id,
            traceparent=message.traceparent,
            baggage=message.baggage,
            metadata=message.metadata,
        )
        set_current(ctx)  # this task's own context: calls made by the handler forward it
        result: Raw | Any = UNSET
        error: ErrorBody | None = None
        entry = self._registrations.functions.get(message.function_id)
        if entry is None:
            error = ErrorBody(
                code="function_not_found", message=f"Function {message.function_id} not found"
            )
        else:
            try:
                data = resolve_channels(raw_to_python(message.data), self.url)
                args = (data, ctx) if entry.wants_context else (data,)
                if entry.is_async:
                    value = await entry.handler(*args)
                else:
                    value = await asyncio.to_thread(entry.handler, *args)
                    if inspect.isawaitable(value):
                        value = await value
                result = encode_payload(value)
            except InvocationError as exc:
                error = exc.to_body()
            except Exception as exc:  # the caller gets the error instead
                log.debug("handler %s raised", message.function_id, exc_info=True)
                error = ErrorBody(
                    code="invocation_failed",
                    message=str(exc) or type(exc).__name__,
                    stacktrace=traceback.format_exc(),
                )
        if message.invocation_id is None:
            return
        await self._send_reply(
            writer,
            InvocationResult(
                invocation_id=message.invocation_id,
                function_id=message.function_id,
                result=result if error is None else UNSET,
                error=error,
                traceparent=message.traceparent,
                baggage=message.baggage,
            ),
        )

    @staticmethod
    async def _send_reply(writer: FrameWriter | None, message: Any) -> None:
        if writer is None or not writer.alive:
            return  # the connection that asked is gone; the engine already failed the call
        if writer.full:
            await writer.wait_room()
        writer.put_nowait(encode(message))

    async def _handle_register_trigger(self, message: RegisterTrigger) -> None:
        writer = self._writer
        trigger = TriggerConfig(
            message.id, message.trigger_type, message.function_id, message.config
        )
        entry = self._registrations.trigger_types.get(message.trigger_type)
        error: ErrorBody | None = None
        if entry is None:
            error = ErrorBody(
                code="trigger_type_not_found",
                message=f"this worker does not provide trigger type {message.trigger_type}",
            )
        else:
            try:
                await _run_callback(entry.handler.register_trigger, trigger)
            except Exception as exc:  # reported to the engine
                error = ErrorBody(code="trigger_registration_failed", message=str(exc))
            else:
                if writer is not None and writer.alive:
                    entry.active[trigger.id] = trigger
                else:  # the connection dropped meanwhile; the engine re-sends it later
                    await _run_callback(entry.handler.unregister_trigger, trigger)
        await self._send_reply(
            writer,
            TriggerRegistrationResult(
                id=message.id,
                trigger_type=message.trigger_type,
                function_id=message.function_id,
                error=error,
            ),
        )

    async def _handle_unregister_trigger(self, message: UnregisterTrigger) -> None:
        entry = self._registrations.trigger_types.get(message.trigger_type or "")
        if entry is None:
            return
        trigger = entry.active.pop(message.id, None)
        if trigger is None:
            return
        try:
            await _run_callback(entry.handler.unregister_trigger, trigger)
        except Exception:  # nobody to report to
            log.exception("unregister_trigger of %s failed", entry.id)

    async def _stop_active_triggers(self) -> None:
        """The engine forgets a provider's triggers when its connection ends and re-sends them
        after the type is registered again: stop them here so that they never run twice."""
        for entry in self._registrations.trigger_types.values():
            active, entry.active = entry.active, {}
            for trigger in active.values():
                try:
                    await _run_callback(entry.handler.unregister_trigger, trigger)
                except Exception:
                    log.exception("unregister_trigger of %s failed", entry.id)


async def _run_callback(callback: Callable[[TriggerConfig], Any], trigger: TriggerConfig) -> None:
    if is_async_handler(callback):
        await callback(trigger)
        return
    value = await asyncio.to_thread(callback, trigger)
    if inspect.isawaitable(value):
        await value
