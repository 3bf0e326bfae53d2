"""Configuration of :class:`~iii_otel.module.OtelModule` (reference §6.1, plus our additions).

Every key is optional.  A key left out falls back to its environment variable (where the
reference has one), then to the default.  :class:`OtelConfig` is what the config file may hold
(unknown keys are rejected); :func:`resolve` turns it into :class:`Settings` with every value
decided, so the rest of the module never looks at the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import attrs

from iii_core.errors import ConfigError
from iii_otel.alerts import AlertRule, parse_alerts
from iii_otel.sampling import SamplingSettings, parse_sampling

T = TypeVar("T")

Exporter = Literal["otlp", "memory", "both"]


@attrs.define(frozen=True)
class OtelConfig:
    """Keys accepted under ``config:`` of ``modules::observability::OtelModule``."""

    enabled: bool | None = None
    service_name: str | None = None
    service_version: str | None = None
    service_namespace: str | None = None
    exporter: Exporter | None = None
    endpoint: str | None = None
    sampling_ratio: float | None = None
    sampling: dict[str, Any] | None = None
    memory_max_spans: int | None = None
    trace_engine_functions: bool = False
    metrics_enabled: bool | None = None
    metrics_exporter: Literal["memory", "otlp", "both"] | None = None
    metrics_retention_seconds: int | None = None
    metrics_max_count: int | None = None
    metrics_max_series: int = 2000
    logs_enabled: bool = True
    logs_exporter: Exporter | None = None
    logs_max_count: int = 1000
    logs_retention_seconds: int | None = None
    logs_batch_size: int | None = None
    logs_flush_interval_ms: int | None = None
    logs_sampling_ratio: float = 1.0
    logs_console_output: bool = True
    log_trigger_max_inflight: int = 1000
    export_queue_size: int = 10_000
    export_batch_size: int = 512
    export_interval_ms: int = 1000
    export_timeout_ms: int = 5000
    prometheus_enabled: bool = True
    prometheus_host: str | None = None
    prometheus_port: int | None = None
    alerts: list[Any] | None = None
    alerts_interval_ms: int = 10_000
    rollups_enabled: bool = True
    rollup_interval_ms: int = 10_000
    level: str | None = None
    log_level: str | None = None
    format: Literal["default", "human", "json"] | None = None


@attrs.define(frozen=True)
class Settings:
    """Every option decided (config key, then environment variable, then default)."""

    enabled: bool
    service_name: str
    service_version: str
    service_namespace: str | None
    deployment_environment: str | None
    exporter: Exporter
    endpoint: str
    sampling_ratio: float
    memory_max_spans: int
    trace_engine_functions: bool
    metrics_enabled: bool
    metrics_exporter: str
    metrics_retention_seconds: int
    metrics_max_count: int
    metrics_max_series: int
    logs_enabled: bool
    logs_exporter: Exporter
    logs_max_count: int
    logs_retention_seconds: int | None
    logs_sampling_ratio: float
    logs_console_output: bool
    log_trigger_max_inflight: int
    export_queue_size: int
    export_batch_size: int
    export_interval_ms: int
    export_timeout_ms: int
    prometheus_enabled: bool
    prometheus_host: str
    prometheus_port: int
    prometheus_port_configured: bool
    level: str | None
    format: str | None
    #: Effective sampling configuration (``default`` falls back to ``sampling_ratio``).
    sampling: SamplingSettings
    alerts: tuple[AlertRule, ...]
    alerts_interval_ms: int
    rollups_enabled: bool
    rollup_interval_ms: int

    @property
    def spans_in_memory(self) -> bool:
        return self.enabled and self.exporter in ("memory", "both")

    @property
    def spans_to_otlp(self) -> bool:
        return self.enabled and self.exporter in ("otlp", "both")

    @property
    def logs_to_otlp(self) -> bool:
        return self.logs_enabled and self.logs_exporter in ("otlp", "both")

    @property
    def metrics_to_otlp(self) -> bool:
        return self.metrics_enabled and self.metrics_exporter in ("otlp", "both")


def _env(name: str, parse: Callable[[str], T], where: str) -> T | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: environment variable {name}={raw!r}: {exc}") from None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _pick(value: T | None, env: T | None, default: T) -> T:
    if value is not None:
        return value
    if env is not None:
        return env
    return default


def resolve(cfg: OtelConfig, where: str) -> Settings:
    """Decide every option; raise :class:`ConfigError` naming the key on a bad value."""

    def env(name: str, parse: Callable[[str], Any]) -> Any:
        return _env(name, parse, where)

    settings = Settings(
        enabled=_pick(cfg.enabled, env("OTEL_ENABLED", _bool), True),
        service_name=_pick(cfg.service_name, env("OTEL_SERVICE_NAME", str), "iii"),
        service_version=_pick(cfg.service_version, env("SERVICE_VERSION", str), "unknown"),
        service_namespace=cfg.service_namespace or env("SERVICE_NAMESPACE", str),
        deployment_environment=env("DEPLOYMENT_ENVIRONMENT", str),
        exporter=_pick(
            cfg.exporter, env("OTEL_EXPORTER_TYPE", _choice("otlp", "memory", "both")), "memory"
        ),
        endpoint=_pick(
            cfg.endpoint, env("OTEL_EXPORTER_OTLP_ENDPOINT", str), "http://localhost:4318"
        ).rstrip("/"),
        sampling_ratio=_pick(cfg.sampling_ratio, env("OTEL_TRACES_SAMPLER_ARG", float), 1.0),
        memory_max_spans=_pick(cfg.memory_max_spans, env("OTEL_MEMORY_MAX_SPANS", int), 1000),
        trace_engine_functions=cfg.trace_engine_functions,
        metrics_enabled=_pick(cfg.metrics_enabled, env("OTEL_METRICS_ENABLED", _bool), True),
        metrics_exporter=_pick(
            cfg.metrics_exporter,
            env("OTEL_METRICS_EXPORTER", _choice("memory", "otlp", "both")),
            "memory",
        ),
        metrics_retention_seconds=_pick(
            cfg.metrics_retention_seconds, env("OTEL_METRICS_RETENTION_SECONDS", int), 3600
        ),
        metrics_max_count=_pick(cfg.metrics_max_count, env("OTEL_METRICS_MAX_COUNT", int), 10_000),
        metrics_max_series=cfg.metrics_max_series,
        logs_enabled=cfg.logs_enabled,
        logs_exporter=_pick(
            cfg.logs_exporter,
            env("OTEL_LOGS_EXPORTER", _choice("otlp", "memory", "both")),
            "memory",
        ),
        logs_max_count=cfg.logs_max_count,
        logs_retention_seconds=cfg.logs_retention_seconds,
        logs_sampling_ratio=cfg.logs_sampling_ratio,
        logs_console_output=cfg.logs_console_output,
        log_trigger_max_inflight=cfg.log_trigger_max_inflight,
        export_queue_size=cfg.export_queue_size,
        export_batch_size=cfg.logs_batch_size or cfg.export_batch_size,
        export_interval_ms=cfg.logs_flush_interval_ms or cfg.export_interval_ms,
        export_timeout_ms=cfg.export_timeout_ms,
        prometheus_enabled=cfg.prometheus_enabled,
        prometheus_host=_pick(cfg.prometheus_host, env("III_PROMETHEUS_HOST", str), "127.0.0.1"),
        prometheus_port=_pick(cfg.prometheus_port, env("III_PROMETHEUS_PORT", int), 9464),
        prometheus_port_configured=cfg.prometheus_port is not None
        or os.environ.get("III_PROMETHEUS_PORT") is not None,
        level=cfg.level or cfg.log_level,
        format=cfg.format,
        sampling=SamplingSettings(default=1.0),  # decided below, once sampling_ratio is checked
        alerts=(),
        alerts_interval_ms=cfg.alerts_interval_ms,
        rollups_enabled=cfg.rollups_enabled,
        rollup_interval_ms=cfg.rollup_interval_ms,
    )
    _check(settings, where)
    return attrs.evolve(
        settings,
        sampling=parse_sampling(cfg.sampling, settings.sampling_ratio, where),
        alerts=parse_alerts(cfg.alerts, where, settings.metrics_enabled),
    )


def _check(s: Settings, where: str) -> None:
    if not 0.0 <= s.sampling_ratio <= 1.0:
        raise ConfigError(f"{where}: sampling_ratio must be within 0..1, got {s.sampling_ratio}")
    if not 0.0 <= s.logs_sampling_ratio <= 1.0:
        raise ConfigError(
            f"{where}: logs_sampling_ratio must be within 0..1, got {s.logs_sampling_ratio}"
        )
    for key in (
        "memory_max_spans",
        "metrics_max_count",
        "metrics_max_series",
        "logs_max_count",
        "log_trigger_max_inflight",
        "export_queue_size",
        "export_batch_size",
        "export_interval_ms",
        "export_timeout_ms",
        "alerts_interval_ms",
        "rollup_interval_ms",
    ):
        if getattr(s, key) <= 0:
            raise ConfigError(f"{where}: {key} must be positive, got {getattr(s, key)}")
    if not 0 <= s.prometheus_port <= 65535:
        raise ConfigError(f"{where}: prometheus_port must be 0..65535, got {s.prometheus_port}")
    if not s.endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where}: endpoint must be an http(s) URL of an OTLP/HTTP collector, "
            f"got {s.endpoint!r}"
        )
