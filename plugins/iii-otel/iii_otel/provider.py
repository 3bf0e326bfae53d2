"""The process-wide OTel tracer provider, pointed at the running OtelModule's SDK provider.

OpenTelemetry lets a process set its global tracer provider only once, but an engine can be
started and stopped several times in one process (tests, embedding).  So the global provider is
a small switch installed once; each OtelModule points it at its own SDK ``TracerProvider`` while
it runs.  Other modules simply call ``opentelemetry.trace.get_tracer("iii.<module>")``: their
spans are recorded while an OtelModule runs and are no-ops otherwise.  When two engines run in
one process, the most recently started one records the other modules' spans.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Tracer
from opentelemetry.util import types

log = logging.getLogger("iii.otel")


class _SwitchingTracer(Tracer):
    """A tracer whose spans go to whatever SDK provider the switch points at when started."""

    def __init__(self, switch: _SwitchingProvider, args: tuple[Any, ...]) -> None:
        self._switch = switch
        self._args = args
        self._cache: tuple[TracerProvider | None, Tracer] = (None, NoOpTracer())

    def _tracer(self) -> Tracer:
        provider = self._switch.current
        cached_for, tracer = self._cache
        if provider is not cached_for:
            tracer = provider.get_tracer(*self._args) if provider is not None else NoOpTracer()
            self._cache = (provider, tracer)
        return tracer

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return self._tracer().start_span(
            name, context, kind, attributes, links, start_time, record_exception,
            set_status_on_exception,
        )  # fmt: skip

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Any = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        return self._tracer().start_as_current_span(  # type: ignore[return-value]
            name, context, kind, attributes, links, start_time, record_exception,
            set_status_on_exception, end_on_exit,
        )  # fmt: skip


class _SwitchingProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.current: TracerProvider | None = None

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> Tracer:
        return _SwitchingTracer(
            self, (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        )


_SWITCH = _SwitchingProvider()


def install(provider: TracerProvider) -> None:
    """Make ``provider`` record the spans of ``opentelemetry.trace.get_tracer(...)`` callers."""
    current = trace.get_tracer_provider()
    if current is not _SWITCH:
        if isinstance(current, trace.ProxyTracerProvider):
            trace.set_tracer_provider(_SWITCH)
        else:
            log.warning(
                "a global OpenTelemetry tracer provider (%s) was already set by the host "
                "application; the engine records its own invocation spans, other modules' "
                "spans go to that provider",
                type(current).__name__,
            )
    _SWITCH.current = provider


def uninstall(provider: TracerProvider) -> None:
    """Stop routing global spans to ``provider`` (when it is still the active one)."""
    if _SWITCH.current is provider:
        _SWITCH.current = None
