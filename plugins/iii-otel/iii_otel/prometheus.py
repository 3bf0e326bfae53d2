"""Prometheus ``/metrics`` (default ``127.0.0.1:9464``), computed from the module's counters.

Nothing is pushed into ``prometheus_client`` on the hot path: a custom collector reads the plain
counters of :class:`~iii_otel.stats.InvocationStats`, the observer and the engine's
``gauges()`` and every module's when Prometheus scrapes.  Every metric name is listed in the README.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from iii_otel.stats import BUCKETS

if TYPE_CHECKING:
    from iii_core import Module
    from iii_otel.module import OtelModule

log = logging.getLogger("iii.otel")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METRIC_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class EngineCollector(Collector):
    def __init__(self, module: OtelModule) -> None:
        self.module = module

    def collect(self) -> Iterator[Metric]:
        module = self.module
        engine = module.engine
        obs = module.observer
        stats = module.stats

        yield GaugeMetricFamily(
            "iii_workers_active",
            "Connected workers (telemetry-only sockets not counted)",
            value=engine.workers.active_count(),
        )
        yield CounterMetricFamily(
            "iii_workers_spawns", "Worker connections accepted", value=obs.spawns_total
        )
        yield CounterMetricFamily(
            "iii_workers_deaths", "Worker connections closed", value=obs.deaths_total
        )
        yield CounterMetricFamily(
            "iii_functions_registered",
            "Function ids registered since start",
            value=obs.functions_registered_total,
        )
        yield CounterMetricFamily(
            "iii_protocol_errors",
            "Frames dropped because they were not valid messages",
            value=engine.protocol_errors_total,
        )

        invocations = CounterMetricFamily(
            "iii_invocations", "Finished invocations", labels=["function_id", "status"]
        )
        duration = HistogramMetricFamily(
            "iii_invocation_duration_seconds",
            "Invocation duration, from dispatch to result",
            labels=["function_id", "status"],
        )
        for (function_id, status), series in list(stats.series.items()):
            invocations.add_metric([function_id, status], series.count)
            cumulative = 0
            buckets = []
            for bound, count in zip((*BUCKETS, float("inf")), series.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            duration.add_metric([function_id, status], buckets, series.sum)
        yield invocations
        yield duration

        errors = CounterMetricFamily(
            "iii_invocation_errors", "Failed invocations", labels=["function_id", "error_code"]
        )
        for (function_id, code), count in list(stats.errors.items()):
            errors.add_metric([function_id, code], count)
        yield errors

        frames = CounterMetricFamily(
            "iii_telemetry_frames", "Worker telemetry frames ingested", labels=["prefix"]
        )
        for prefix, count in obs.frames_total.items():
            frames.add_metric([prefix], count)
        yield frames
        yield CounterMetricFamily(
            "iii_telemetry_frames_rejected",
            "Worker telemetry frames that could not be decoded",
            value=obs.frames_rejected_total,
        )

        for name, size in engine.gauges().items():
            yield GaugeMetricFamily(f"iii_engine_{name}", f"Engine store size: {name}", value=size)
        yield from self._module_metrics(engine.modules)

    def _module_metrics(self, modules: list[Module]) -> Iterator[Metric]:
        """Every module's ``gauges()``: ``iii_<name>``, a counter when the name ends in
        ``_total``.  A name two modules share is exported once (the first module's)."""
        seen: set[str] = set()
        for module in modules:
            try:
                values = module.gauges()
            except Exception as exc:  # one module's bug must not break the scrape
                log.warning("%s.gauges() failed: %s", type(module).__name__, exc)
                continue
            for name, value in values.items():
                if name in seen or not _METRIC_NAME.match(name):
                    continue
                seen.add(name)
                what = f"{type(module).__name__}: {name}"
                if name.endswith("_total"):
                    yield CounterMetricFamily(f"iii_{name[: -len('_total')]}", what, value=value)
                else:
                    yield GaugeMetricFamily(f"iii_{name}", what, value=value)


class PrometheusServer:
    """An aiohttp server answering ``GET /metrics``."""

    def __init__(self, module: OtelModule) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(module))
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr,attr-defined]
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
