"""The ``state`` trigger type: config, matching, and dispatch after a write.

Config ``{scope?, key?, condition_function_id?}``; ``scope`` and ``key`` match by equality when
given.  After a successful write the module hands the event to :meth:`StateTriggers.emit`, which
picks the matching triggers and runs them **sequentially in one background task** owned by the
engine: the write call never waits for them.  A condition returning exactly ``false`` skips its
handler; a condition error skips it too.  Condition and handler errors are logged and counted
(:attr:`StateTriggers.condition_errors`, :attr:`StateTriggers.handler_errors`).  At most
``max_pending_events`` dispatch tasks exist at once; events beyond that are dropped, logged and
counted (:attr:`StateTriggers.events_dropped`), so a slow handler cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import attrs
from opentelemetry import propagate, trace

from iii_core import Engine, Trigger
from iii_core.conditions import condition_allows

log = logging.getLogger("iii.state.triggers")
tracer = trace.get_tracer("iii.state")

TRIGGER_TYPE = "state"
CONFIG_KEYS = ("scope", "key", "condition_function_id")


@attrs.frozen
class StateTriggerConfig:
    scope: str | None = None
    key: str | None = None
    condition_function_id: str | None = None

    def matches(self, scope: str, key: str) -> bool:
        return (self.scope is None or self.scope == scope) and (self.key is None or self.key == key)


def parse_trigger_config(config: Any) -> StateTriggerConfig:
    """Validate a trigger config; unknown keys are ignored (SDKs may add their own)."""
    if config is None:
        return StateTriggerConfig()
    if not isinstance(config, dict):
        raise ValueError(f"state trigger config must be an object, got {config!r}")
    values: dict[str, str | None] = {}
    for name in CONFIG_KEYS:
        value = config.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"state trigger config: '{name}' must be a string, got {value!r}")
        values[name] = value or None
    return StateTriggerConfig(**values)


class StateTriggers:
    """Registrator of the ``state`` trigger type and dispatcher of state events."""

    def __init__(self, engine: Engine, *, max_pending_events: int, handler_timeout_ms: int | None):
        self.engine = engine
        self.max_pending_events = max_pending_events
        self.handler_timeout = handler_timeout_ms / 1000 if handler_timeout_ms else None
        self.triggers: dict[str, tuple[Trigger, StateTriggerConfig]] = {}
        self.pending_events = 0
        self.events_dispatched = 0
        self.events_dropped = 0
        self.handler_errors = 0
        self.condition_errors = 0
        self._last_drop_log = 0.0

    async def register_trigger(self, trigger: Trigger) -> None:
        self.triggers[trigger.id] = (trigger, parse_trigger_config(trigger.config))

    async def unregister_trigger(self, trigger: Trigger) -> None:
        self.triggers.pop(trigger.id, None)

    def emit(self, event: dict[str, Any], traceparent: str | None) -> None:
        """Schedule the triggers matching ``event`` (cheap when there are none)."""
        if not self.triggers:
            return
        scope, key = event["scope"], event["key"]
        matching = [(t, c) for t, c in self.triggers.values() if c.matches(scope, key)]
        if not matching:
            return
        if self.pending_events >= self.max_pending_events:
            self.events_dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 5:
                self._last_drop_log = now
                log.warning(
                    "state event for %s/%s dropped: %d trigger dispatches already pending "
                    "('max_pending_events'); %d dropped so far",
                    scope,
                    key,
                    self.pending_events,
                    self.events_dropped,
                )
            return
        self.pending_events += 1
        self.engine.spawn(self._dispatch(matching, event, traceparent), name="state-triggers")

    async def _dispatch(
        self,
        matching: list[tuple[Trigger, StateTriggerConfig]],
        event: dict[str, Any],
        traceparent: str | None,
    ) -> None:
        parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
        try:
            with tracer.start_as_current_span(
                "state_triggers",
                context=parent,
                attributes={"iii.state.scope": event["scope"], "iii.state.key": event["key"]},
            ) as span:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                child = carrier.get("traceparent", traceparent)
                failed = False
                for trigger, config in matching:
                    failed |= not await self._run_one(trigger, config, event, child)
                if failed:
                    span.set_status(trace.StatusCode.ERROR)
        finally:
            self.pending_events -= 1
            self.events_dispatched += 1

    async def _run_one(
        self,
        trigger: Trigger,
        config: StateTriggerConfig,
        event: dict[str, Any],
        traceparent: str | None,
    ) -> bool:
        if config.condition_function_id is not None:
            try:
                allowed = await asyncio.wait_for(
                    condition_allows(self.engine, trigger.config, event, traceparent=traceparent),
                    self.handler_timeout,
                )
            except Exception as exc:
                self.condition_errors += 1
                log.error(
                    "state trigger %s: condition %s failed, handler %s skipped: %r",
                    trigger.id,
                    config.condition_function_id,
                    trigger.function_id,
                    exc,
                )
                return False
            if not allowed:
                return True
        try:
            await self.engine.call(
                trigger.function_id, event, timeout=self.handler_timeout, traceparent=traceparent
            )
        except Exception as exc:
            self.handler_errors += 1
            log.error(
                "state trigger %s: handler %s failed: %r", trigger.id, trigger.function_id, exc
            )
            return False
        return True
