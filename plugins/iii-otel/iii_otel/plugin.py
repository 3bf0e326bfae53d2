"""Entry point of the ``iii-otel`` distribution: declares :class:`OtelModule`."""

from __future__ import annotations

from iii_core import ModuleSpec, hookimpl
from iii_otel.module import OtelModule


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::observability::OtelModule", "modules::otel::OtelModule"),
            factory=OtelModule,
            # Default: `iii` with no config serves Prometheus on 127.0.0.1:9464 and keeps
            # bounded in-memory traces/logs; it needs no external service.
            default=True,
            description="Traces, logs and metrics: OTLP export, in-memory stores, Prometheus",
        )
    ]
