"""Log records: the bounded store, the ``log`` trigger type and capture of the engine's own logs.

Three sources feed one pipeline: ``engine::log::*`` calls, workers' ``LOGS`` frames and the
engine's own log lines (``[REGISTERED] Function users.create``, worker connected, ...; every
record of the ``iii`` logger at INFO or above).  Each stored record fires the ``log`` triggers
whose ``level`` matches.  Deliveries in flight are capped (``log_trigger_max_inflight``) so that
a log flood cannot queue unbounded work; the excess is dropped and counted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from iii_core import Trigger
from iii_core.errors import InvocationError, RegistrationError
from iii_otel.otlp import severity_text
from iii_otel.stores import RecordStore

if TYPE_CHECKING:
    from iii_core import Engine
    from iii_otel.export import OtlpForwarder

log = logging.getLogger("iii.otel")
console = logging.getLogger("iii.log")

LEVELS = ("all", "info", "warn", "error", "debug", "trace")
SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17}
_PY_LEVEL = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
SKIP_ATTR = "iii_log_stored"
"""Set on a ``logging`` record (``extra=``) that is already in the store (console echo)."""


class LogPipeline:
    def __init__(
        self,
        engine: Engine,
        store: RecordStore,
        *,
        resource: dict[str, Any],
        service_name: str,
        sampling_ratio: float,
        max_inflight: int,
        forwarder: OtlpForwarder | None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.resource = resource
        self.service_name = service_name
        self.sampling_ratio = sampling_ratio
        self.max_inflight = max_inflight
        self.forwarder = forwarder
        self.triggers: dict[str, tuple[str, str]] = {}
        self.inflight = 0
        self.dropped_deliveries = 0

    # ------------------------------------------------------------------ the `log` trigger type

    async def register_trigger(self, trigger: Trigger) -> None:
        config = trigger.config if trigger.config is not None else {}
        if not isinstance(config, dict):
            raise RegistrationError(f"log trigger config must be an object, got {config!r}")
        unknown = set(config) - {"level"}
        if unknown:
            raise RegistrationError(
                f"log trigger config: unknown key(s) {', '.join(sorted(unknown))} (allowed: level)"
            )
        level = str(config.get("level", "all")).lower()
        if level not in LEVELS:
            raise RegistrationError(
                f"log trigger level must be one of {', '.join(LEVELS)}, got {config['level']!r}"
            )
        self.triggers[trigger.id] = (trigger.function_id, level)

    async def unregister_trigger(self, trigger: Trigger) -> None:
        self.triggers.pop(trigger.id, None)

    # ------------------------------------------------------------------ storing

    def add(self, record: dict[str, Any], *, export: bool) -> None:
        """Store one record, fire matching ``log`` triggers, queue it for OTLP export."""
        if self.sampling_ratio < 1.0 and random.random() >= self.sampling_ratio:
            return
        self.store.add(record)
        if export and self.forwarder is not None:
            self.forwarder.add("logs", ("record", record))
        if self.triggers:
            level = str(record["severity_text"]).lower()
            if level == "warning":
                level = "warn"
            for function_id, wanted in list(self.triggers.values()):
                if wanted == "all" or wanted == level:
                    self._deliver(function_id, record)

    def _deliver(self, function_id: str, record: dict[str, Any]) -> None:
        if self.inflight >= self.max_inflight:
            self.dropped_deliveries += 1
            return
        self.inflight += 1
        self.engine.spawn(self._call(function_id, record), name=f"log trigger {function_id}")

    async def _call(self, function_id: str, record: dict[str, Any]) -> None:
        try:
            await self.engine.call(function_id, record)
        except InvocationError as exc:
            log.debug("log trigger function %s failed: %s", function_id, exc)
        finally:
            self.inflight -= 1

    def record(
        self,
        level: str,
        body: Any,
        attributes: dict[str, Any],
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        service_name: str | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """A record of the engine's own (``level`` is a key of :data:`SEVERITY`)."""
        now = time.time_ns()
        if trace_id is None:
            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid:
                trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        number = SEVERITY[level]
        return {
            "timestamp_unix_nano": now,
            "observed_timestamp_unix_nano": now,
            "severity_number": number,
            "severity_text": severity_text(number),
            "body": body,
            "attributes": attributes,
            "trace_id": trace_id,
            "span_id": span_id,
            "resource": self.resource,
            "service_name": service_name or self.service_name,
            "instrumentation_scope_name": scope or "iii",
            "instrumentation_scope_version": None,
        }

    def echo(self, level: str, message: str, data: Any) -> None:
        """Print an ``engine::log::*`` record on the engine console (not stored again)."""
        if data is None:
            console.log(_PY_LEVEL[level], "%s", message, extra={SKIP_ATTR: True})
        else:
            console.log(_PY_LEVEL[level], "%s %s", message, data, extra={SKIP_ATTR: True})


_FROM_PY = ((logging.ERROR, "error"), (logging.WARNING, "warn"), (logging.INFO, "info"))


class EngineLogHandler(logging.Handler):
    """Stores the engine's own log records (the ``iii`` logger, INFO and above).

    Records logged from another thread are handed to the event loop; a record logged while one
    is being stored (a trigger delivery that logs) is not stored again.
    """

    def __init__(self, pipeline: LogPipeline, loop: Any) -> None:
        super().__init__(logging.INFO)
        self.pipeline = pipeline
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self._busy = False

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, SKIP_ATTR, False) or self._busy:
            return
        try:
            level = next((name for lvl, name in _FROM_PY if record.levelno >= lvl), "debug")
            attrs: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                attrs["exception"] = repr(record.exc_info[1])
            entry = self.pipeline.record(level, record.getMessage(), attrs, scope=record.name)
            if threading.get_ident() == self.loop_thread:
                self._store(entry)
            else:
                self.loop.call_soon_threadsafe(self._store, entry)
        except Exception:
            self.handleError(record)

    def _store(self, entry: dict[str, Any]) -> None:
        self._busy = True
        try:
            self.pipeline.add(entry, export=True)
        finally:
            self._busy = False
