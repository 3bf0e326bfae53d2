"""Trigger types ``stream``, ``stream:join`` and ``stream:leave`` (reference §5.7).

``stream`` triggers run for every emitted envelope whose stream (and group / item, when the
config names them) match, sequentially in a background task with the envelope as input; the
write that caused it does not wait.  Join triggers are awaited and may refuse a subscription.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace

from iii_core import RegistrationError, Trigger
from iii_core.conditions import condition_allows

if TYPE_CHECKING:
    from iii_core import Engine

log = logging.getLogger("iii.stream.triggers")
tracer = trace.get_tracer("iii.stream")

STREAM = "stream"
JOIN = "stream:join"
LEAVE = "stream:leave"


class TriggerSet:
    """The active triggers of one type (a registrator the engine drives)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.triggers: dict[str, Trigger] = {}

    async def register_trigger(self, trigger: Trigger) -> None:
        if self.kind == STREAM:
            _check_stream_config(trigger.config)
        self.triggers[trigger.id] = trigger

    async def unregister_trigger(self, trigger: Trigger) -> None:
        self.triggers.pop(trigger.id, None)

    def __len__(self) -> int:
        return len(self.triggers)


def _check_stream_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise RegistrationError(
            f"a stream trigger config must be an object with 'stream_name', got {config!r}"
        )
    if not isinstance(config.get("stream_name"), str) or not config["stream_name"]:
        raise RegistrationError("a stream trigger config needs a non-empty 'stream_name' string")
    for key in ("group_id", "item_id", "condition_function_id"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            raise RegistrationError(f"stream trigger config: '{key}' must be a string or null")


def stream_trigger_matches(config: dict[str, Any], event: dict[str, Any]) -> bool:
    if config["stream_name"] != event["streamName"]:
        return False
    group = config.get("group_id")
    if group is not None and group != event["groupId"]:
        return False
    item = config.get("item_id")
    return item is None or item == event["id"]


def _traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


class StreamTriggers:
    """Runs the three trigger types; owned by the module."""

    def __init__(self, engine: Engine, max_pending_events: int) -> None:
        self.engine = engine
        self.stream = TriggerSet(STREAM)
        self.join = TriggerSet(JOIN)
        self.leave = TriggerSet(LEAVE)
        self.max_pending_events = max_pending_events
        self.pending_events = 0
        self.dropped_events_total = 0
        self.errors_total = 0

    async def register_types(self) -> None:
        engine = self.engine
        await engine.register_trigger_type(
            STREAM,
            "Runs a function when a stream item changes or a stream event is sent",
            self.stream,
        )
        await engine.register_trigger_type(
            JOIN, "Runs (and may refuse) when a client joins a stream group or item", self.join
        )
        await engine.register_trigger_type(
            LEAVE, "Runs when a client leaves a stream subscription or disconnects", self.leave
        )

    def fire(self, event: dict[str, Any]) -> None:
        """Start the matching ``stream`` triggers for ``event`` without waiting for them."""
        if not self.stream.triggers:
            return
        matching = [
            t for t in self.stream.triggers.values() if stream_trigger_matches(t.config, event)
        ]
        if not matching:
            return
        if self.pending_events >= self.max_pending_events:
            self.dropped_events_total += 1
            log.warning(
                "stream triggers: %d events already pending (max_pending_trigger_events); "
                "dropped the triggers of an event on %s/%s",
                self.pending_events,
                event["streamName"],
                event["groupId"],
            )
            return
        self.pending_events += 1
        self.engine.spawn(self._run(matching, event), name="stream triggers")

    async def _run(self, triggers: list[Trigger], event: dict[str, Any]) -> None:
        try:
            with tracer.start_as_current_span(
                "stream event", attributes={"iii.stream.name": event["streamName"]}
            ):
                traceparent = _traceparent()
                for trigger in triggers:
                    try:
                        if not await condition_allows(
                            self.engine, trigger.config, event, traceparent=traceparent
                        ):
                            continue
                        await self.engine.call(trigger.function_id, event, traceparent=traceparent)
                    except Exception as exc:  # one handler must not stop the rest
                        self.errors_total += 1
                        log.warning(
                            "stream trigger %s → %s failed: %s",
                            trigger.id,
                            trigger.function_id,
                            exc,
                        )
        finally:
            self.pending_events -= 1

    async def join_authorized(self, payload: dict[str, Any]) -> bool:
        """Call every join trigger in turn (all of them, even after a refusal)."""
        if not self.join.triggers:
            return True
        authorized = True
        with tracer.start_as_current_span("stream join"):
            traceparent = _traceparent()
            for trigger in list(self.join.triggers.values()):
                try:
                    result = await self.engine.call(
                        trigger.function_id, payload, traceparent=traceparent
                    )
                except Exception as exc:  # an error counts as authorised
                    log.warning("stream:join trigger %s failed: %s", trigger.function_id, exc)
                    continue
                if isinstance(result, dict) and result.get("unauthorized") is True:
                    authorized = False
        return authorized

    async def left(self, payload: dict[str, Any]) -> None:
        if not self.leave.triggers:
            return
        for trigger in list(self.leave.triggers.values()):
            try:
                await self.engine.call(trigger.function_id, payload)
            except Exception as exc:  # results and errors are ignored
                log.warning("stream:leave trigger %s failed: %s", trigger.function_id, exc)
