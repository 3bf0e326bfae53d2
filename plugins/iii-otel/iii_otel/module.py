"""``modules::observability::OtelModule``: traces, logs, metrics, OTLP export and Prometheus.

Wiring only; each concern lives in its own file: :mod:`iii_otel.observer` (spans per
invocation, telemetry frames), :mod:`iii_otel.stores`, :mod:`iii_otel.logs`,
:mod:`iii_otel.functions`, :mod:`iii_otel.export`, :mod:`iii_otel.prometheus`,
:mod:`iii_otel.sampling` (``sampling`` rules), :mod:`iii_otel.alerts` (``alerts``) and
:mod:`iii_otel.rollups` (``engine::rollups::list``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from iii_core import ConfigError, Module, structure
from iii_core.logs import JsonFormatter
from iii_otel import provider as global_provider
from iii_otel.alerts import AlertEvaluator
from iii_otel.config import OtelConfig, resolve
from iii_otel.engine_spans import EngineSpan, EngineSpanFactory
from iii_otel.export import OtlpForwarder
from iii_otel.functions import OtelFunctions
from iii_otel.logs import EngineLogHandler, LogPipeline
from iii_otel.observer import OtelObserver
from iii_otel.prometheus import PrometheusServer
from iii_otel.rollups import Rollups
from iii_otel.sampling import RuleSampler, RuleSpanFactory
from iii_otel.stats import InvocationStats
from iii_otel.stores import RecordStore, SpanStore

if TYPE_CHECKING:
    from iii_core import Engine

log = logging.getLogger("iii.otel")
WHERE = "modules::observability::OtelModule config"


class _StoreProcessor(SpanProcessor):
    """Hands every ended engine span to the span store and the OTLP export buffer (one
    ``deque.append`` each; conversion happens when the store is read or the batch is sent)."""

    def __init__(self, store: SpanStore | None, forwarder: OtlpForwarder | None) -> None:
        self.store = store
        self.forwarder = forwarder

    def on_end(self, span: ReadableSpan) -> None:  # type: ignore[override]
        if self.store is not None:
            self.store.add(span)
        if self.forwarder is not None:
            self.forwarder.add("traces", span)


class OtelModule(Module):
    name = "OtelModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = structure(OtelConfig, config, WHERE)
        self.settings = s = resolve(self.config, WHERE)
        self.resource: dict[str, Any] = {
            "service.name": s.service_name,
            "service.version": s.service_version,
        }
        if s.service_namespace:
            self.resource["service.namespace"] = s.service_namespace
        if s.deployment_environment:
            self.resource["deployment.environment"] = s.deployment_environment
        self.stats = InvocationStats(s.metrics_max_series)
        self.spans = SpanStore(s.memory_max_spans, s.service_name) if s.spans_in_memory else None
        self.metrics = (
            RecordStore(s.metrics_max_count, s.metrics_retention_seconds, "received_unix_nano")
            if s.metrics_enabled
            else None
        )
        self.forwarder: OtlpForwarder | None = None
        if s.spans_to_otlp or s.logs_to_otlp or s.metrics_to_otlp:
            self.forwarder = OtlpForwarder(
                s.endpoint,
                self.resource,
                queue_size=s.export_queue_size,
                batch_size=s.export_batch_size,
                interval_ms=s.export_interval_ms,
                timeout_ms=s.export_timeout_ms,
            )
        self.logs: LogPipeline | None = None
        if s.logs_enabled:
            self.logs = LogPipeline(
                engine,
                RecordStore(
                    s.logs_max_count, s.logs_retention_seconds, "observed_timestamp_unix_nano"
                ),
                resource=self.resource,
                service_name=s.service_name,
                sampling_ratio=s.logs_sampling_ratio,
                max_inflight=s.log_trigger_max_inflight,
                forwarder=self.forwarder if s.logs_to_otlp else None,
            )
        if s.level is not None and not isinstance(logging.getLevelName(s.level.upper()), int):
            raise ConfigError(f"{WHERE}: level must be a log level name, got {s.level!r}")
        self.provider: TracerProvider | None = None
        self.observer = OtelObserver(self)
        self.metrics_port: int | None = None
        self._prometheus: PrometheusServer | None = None
        self._log_handler: EngineLogHandler | None = None
        self._export_task: asyncio.Task[None] | None = None
        self.sampler: RuleSampler | None = None
        if s.sampling.needs_rule_sampler:
            self.sampler = RuleSampler(s.sampling, s.service_name)
        self.alerts: AlertEvaluator | None = None
        if s.alerts:
            self.alerts = AlertEvaluator(self, s.alerts, s.alerts_interval_ms)
        self._alerts_task: asyncio.Task[None] | None = None
        self.rollups: Rollups | None = None
        if s.rollups_enabled:
            self.rollups = Rollups(self, s.rollup_interval_ms)
        self._rollups_task: asyncio.Task[None] | None = None

    def _samplers(self) -> tuple[Sampler, EngineSpanFactory]:
        """The SDK sampler and the engine span factory: the rule sampler when ``sampling``
        needs it, else the plain parent-based trace-id ratio (cheapest)."""
        if self.sampler is not None:
            return self.sampler, RuleSpanFactory(self.sampler)
        ratio = self.settings.sampling.default
        return ParentBased(TraceIdRatioBased(ratio)), EngineSpanFactory(ratio)

    async def initialize(self) -> None:
        s = self.settings
        # Bind first: a taken port aborts start-up before anything global is installed.
        if s.prometheus_enabled:
            await self._start_prometheus()
        self._apply_logging()
        sampler, span_factory = self._samplers()
        if s.enabled:
            self.provider = TracerProvider(resource=Resource.create(self.resource), sampler=sampler)
            self.provider.add_span_processor(
                _StoreProcessor(self.spans, self.forwarder if s.spans_to_otlp else None)
            )
            global_provider.install(self.provider)
        self.observer.attach(span_factory if s.enabled else None, len(self.engine.functions))
        self.engine.add_observer(self.observer)
        OtelFunctions(self).register()
        if self.logs is not None:
            await self.engine.register_trigger_type(
                "log", "Fires for every stored log record (config: {level})", self.logs
            )
            self._log_handler = EngineLogHandler(self.logs, asyncio.get_running_loop())
            logging.getLogger("iii").addHandler(self._log_handler)
        if self.forwarder is not None:
            self._export_task = asyncio.create_task(self.forwarder.run(), name="otlp export")
        if self.alerts is not None:
            self.alerts.start()
            self._alerts_task = asyncio.create_task(
                _every(self.alerts.interval_s, self.alerts.evaluate, "alert evaluation"),
                name="otel alerts",
            )
        if self.rollups is not None:
            self._rollups_task = asyncio.create_task(
                _every(self.rollups.interval_s, self.rollups.sample, "rollup sampling"),
                name="otel rollups",
            )

    def _apply_logging(self) -> None:
        """``level`` / ``format`` set the engine console, as in the reference (§6.4)."""
        s = self.settings
        if s.level is not None:
            logging.getLogger("iii").setLevel(s.level.upper())
        if s.format == "json":
            for handler in logging.getLogger().handlers:
                handler.setFormatter(JsonFormatter())

    async def _start_prometheus(self) -> None:
        s = self.settings
        server = PrometheusServer(self)
        try:
            self.metrics_port = await server.start(s.prometheus_host, s.prometheus_port)
        except OSError as exc:
            message = (
                f"Prometheus /metrics could not listen on {s.prometheus_host}:"
                f"{s.prometheus_port}: {exc}"
            )
            if s.prometheus_port_configured or exc.errno != errno.EADDRINUSE:
                raise ConfigError(f"{WHERE}: {message}") from None
            # The default port is taken (another engine on this host): keep running.
            log.warning("%s; set prometheus_port in the OtelModule config", message)
            return
        self._prometheus = server
        log.info("Prometheus metrics on http://%s:%d/metrics", s.prometheus_host, self.metrics_port)

    def span_ended(self, span: EngineSpan) -> None:
        """An engine invocation span ended (called by the observer, on the hot path)."""
        if self.spans is not None:
            self.spans.add(span)
        if self.forwarder is not None and self.settings.spans_to_otlp:
            self.forwarder.add("traces", span)

    def gauges(self) -> dict[str, int]:
        """Sizes of this module's bounded stores (exported as ``iii_otel_*``)."""
        return {
            "otel_spans": len(self.spans) if self.spans is not None else 0,
            "otel_logs": len(self.logs.store) if self.logs is not None else 0,
            "otel_metric_points": len(self.metrics) if self.metrics is not None else 0,
            "otel_export_queued": self.forwarder.queued() if self.forwarder is not None else 0,
            "otel_export_dropped_total": self.forwarder.dropped_total if self.forwarder else 0,
            "otel_log_trigger_inflight": self.logs.inflight if self.logs is not None else 0,
            "otel_alerts_firing": self.alerts.firing if self.alerts is not None else 0,
            "otel_alerts_fired_total": self.alerts.fired_total if self.alerts is not None else 0,
            "otel_rollup_buckets": len(self.rollups) if self.rollups is not None else 0,
        }

    async def shutdown(self) -> None:
        await _stop(self._rollups_task)
        self._rollups_task = None
        await _stop(self._alerts_task)
        self._alerts_task = None
        if self.alerts is not None:
            await self.alerts.close()
        if self._log_handler is not None:
            logging.getLogger("iii").removeHandler(self._log_handler)
            self._log_handler = None
        if self._prometheus is not None:
            await self._prometheus.stop()
            self._prometheus = None
        if self.provider is not None:
            global_provider.uninstall(self.provider)
            self.provider.shutdown()
        await _stop(self._export_task)
        self._export_task = None


async def _every(interval_s: float, action: Callable[[], object], what: str) -> None:
    """Run ``action`` every ``interval_s`` until cancelled; a failure is logged, not fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            action()
        except Exception:
            log.exception("%s failed", what)


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel one of the module's background tasks and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
