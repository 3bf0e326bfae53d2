"""The engine observer: a span per invocation, invocation statistics, worker telemetry frames.

Hot path (``invocation_started`` / ``invocation_finished``, called for every call while the
module is loaded): start an :class:`~iii_otel.engine_spans.EngineSpan` as the child of the
caller's W3C ``traceparent`` and replace ``pending.traceparent`` with the new span's, so that the
worker's own spans become children of the engine's; at the end add the duration to plain
counters and hand the span to the store.  No JSON, no logging, no locks.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from iii_core import EngineObserver
from iii_otel.engine_spans import EngineSpan, EngineSpanFactory
from iii_otel.otlp import logs_from_request, metric_points, spans_from_request

if TYPE_CHECKING:
    from iii_core import Worker
    from iii_core.invocations import Pending
    from iii_core.protocol import ErrorBody
    from iii_core.registries import FunctionEntry
    from iii_otel.module import OtelModule

log = logging.getLogger("iii.otel")

#: ``iii.worker.*`` metric names of the SDKs → ``WorkerMetrics`` fields (reference §3.3, §6.2).
WORKER_METRICS = {
    "iii.worker.memory.heap_used": "memory_heap_used",
    "iii.worker.memory.heap_total": "memory_heap_total",
    "iii.worker.memory.rss": "memory_rss",
    "iii.worker.memory.external": "memory_external",
    "iii.worker.cpu.percent": "cpu_percent",
    "iii.worker.cpu.user_micros": "cpu_user_micros",
    "iii.worker.cpu.system_micros": "cpu_system_micros",
    "iii.worker.event_loop.lag_ms": "event_loop_lag_ms",
    "iii.worker.uptime_seconds": "uptime_seconds",
}
_WARN_EVERY_S = 30.0


class OtelObserver(EngineObserver):
    def __init__(self, module: OtelModule) -> None:
        self.module = module
        self.spans: EngineSpanFactory | None = None
        self.trace_internal = module.settings.trace_engine_functions
        self.stats = module.stats
        self.spawns_total = 0
        self.deaths_total = 0
        self.functions_registered_total = 0
        self.frames_total: dict[str, int] = {"OTLP": 0, "MTRC": 0, "LOGS": 0}
        self.frames_rejected_total = 0
        self._last_warning = 0.0
        self._decoder = msgspec.json.Decoder()

    def attach(self, spans: EngineSpanFactory | None, functions_registered: int) -> None:
        """Called when the module starts: the span factory (None: tracing off) and the number
        of functions registered before the observer was attached."""
        self.spans = spans
        self.functions_registered_total = functions_registered

    # ------------------------------------------------------------------ invocations (hot path)

    def invocation_started(self, pending: Pending) -> None:
        factory = self.spans
        if factory is None:
            return
        function_id = pending.function_id
        if not self.trace_internal and function_id.startswith("engine::"):
            return
        target = pending.target
        span, pending.traceparent = factory.start(
            pending.traceparent, function_id, target.id if target is not None else None
        )
        pending.observer_state = span

    def invocation_finished(self, pending: Pending, error: ErrorBody | None) -> None:
        self.stats.observe(
            pending.function_id,
            None if error is None else error.code,
            time.perf_counter() - pending.started,
        )
        span = pending.observer_state
        if type(span) is EngineSpan:
            pending.observer_state = None
            span.end_ns = time.time_ns()
            if error is not None:
                span.error_code = error.code
                span.error_message = error.message
            self.module.span_ended(span)

    # ------------------------------------------------------------------ registry events

    def worker_connected(self, worker: Worker) -> None:
        if worker.path != "/otel":
            self.spawns_total += 1

    def worker_disconnected(self, worker: Worker) -> None:
        if not worker.telemetry_only:
            self.deaths_total += 1

    def function_registered(self, entry: FunctionEntry) -> None:
        self.functions_registered_total += 1

    # ------------------------------------------------------------------ telemetry frames

    def telemetry_frame(self, worker: Worker, prefix: bytes, payload: bytes) -> None:
        kind = prefix.decode("ascii", "replace")
        try:
            doc = self._decoder.decode(payload)
            if not isinstance(doc, dict):
                raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
            if kind == "OTLP":
                self._spans(worker, doc)
            elif kind == "MTRC":
                self._metrics(worker, doc)
            elif kind == "LOGS":
                self._logs(doc)
            else:
                raise ValueError("unknown telemetry prefix")
        except (msgspec.DecodeError, ValueError, UnicodeDecodeError) as exc:
            self.frames_rejected_total += 1
            self._warn(f"dropped a {kind} telemetry frame from worker {worker.id}: {exc}")
            return
        self.frames_total[kind] += 1

    def _spans(self, worker: Worker, doc: dict[str, Any]) -> None:
        module = self.module
        if module.spans is not None:
            for record in spans_from_request(doc, worker.id):
                module.spans.add(record)
        if module.forwarder is not None and module.settings.spans_to_otlp:
            for item in doc.get("resourceSpans") or []:
                module.forwarder.add("traces", item)

    def _metrics(self, worker: Worker, doc: dict[str, Any]) -> None:
        module = self.module
        if not module.settings.metrics_enabled:
            return
        points = metric_points(doc)
        now_ns = time.time_ns()
        now_ms = now_ns // 1_000_000
        updated: dict[str, dict[str, Any]] = {}
        for point in points:
            point["received_unix_nano"] = now_ns
            if module.metrics is not None:
                module.metrics.add(point)
            field = WORKER_METRICS.get(point["name"])
            if field is None or point.get("value") is None:
                continue
            wid = point["attributes"].get("worker.id")
            target = module.engine.workers.get(wid) if isinstance(wid, str) else None
            if target is None and not worker.telemetry_only:
                target = worker
            if target is None:
                continue
            metrics = updated.get(target.id)
            if metrics is None:
                metrics = updated[target.id] = dict(target.latest_metrics or {})
                metrics["runtime"] = target.runtime or point["service_name"]
                metrics["timestamp_ms"] = now_ms
            metrics[field] = point["value"]
        for wid, metrics in updated.items():
            target = module.engine.workers.get(wid)
            if target is not None:
                target.latest_metrics = metrics
        if module.forwarder is not None and module.settings.metrics_to_otlp:
            for item in doc.get("resourceMetrics") or []:
                module.forwarder.add("metrics", item)

    def _logs(self, doc: dict[str, Any]) -> None:
        module = self.module
        if module.logs is None:
            return
        for record in logs_from_request(doc):
            module.logs.add(record, export=False)
        if module.forwarder is not None and module.settings.logs_to_otlp:
            for item in doc.get("resourceLogs") or []:
                module.forwarder.add("logs", item)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning("%s (further rejected frames are reported every 30 s)", message)
