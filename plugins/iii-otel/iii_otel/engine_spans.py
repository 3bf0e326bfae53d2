"""The engine's own invocation spans, without the OTel SDK's per-span machinery.

An SDK span costs about 40 µs to start and end here (attribute validation under a lock, sampler
objects, processor fan-out); the engine makes one per invocation, which the issue's budget
(tracing keeps >= 70% of untraced throughput) cannot afford.  An :class:`EngineSpan` is a slotted
record with the same meaning: ids from ``random.getrandbits`` (as the SDK's id generator), the
SDK's ``ParentBased(TraceIdRatioBased(ratio))`` sampling decision, and attributes built only when
somebody reads the span.  Spans of other modules still go through the SDK provider.
"""

from __future__ import annotations

import random
import time
from typing import Any

from opentelemetry import trace

_TRACE_ID_LIMIT = (1 << 64) - 1


class EngineSpan:
    """``call <function_id>``: from dispatch to result (or error)."""

    __slots__ = (
        "end_ns",
        "error_code",
        "error_message",
        "function_id",
        "parent_span_id",
        "span_id",
        "start_ns",
        "trace_id",
        "worker_id",
    )

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_span_id: int,
        function_id: str,
        worker_id: str | None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.function_id = function_id
        self.worker_id = worker_id
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.error_code: str | None = None
        self.error_message: str | None = None

    def record(self, service_name: str) -> dict[str, Any]:
        """The stored-span record (the shape of ``engine::traces::list``)."""
        fid = self.function_id
        attributes: dict[str, Any] = {
            "faas.invoked_name": fid,
            "faas.trigger": "other",
            "iii.function.kind": "internal" if fid.startswith("engine::") else "user",
        }
        if self.worker_id is not None:
            attributes["iii.worker.id"] = self.worker_id
        if self.error_code is not None:
            attributes["iii.error.code"] = self.error_code
        end = self.end_ns
        return {
            "trace_id": format(self.trace_id, "032x"),
            "span_id": format(self.span_id, "016x"),
            "parent_span_id": format(self.parent_span_id, "016x") if self.parent_span_id else None,
            "name": f"call {fid}",
            "kind": "internal",
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": end,
            "duration_ms": round((end - self.start_ns) / 1e6, 3) if end else 0.0,
            "status": "unset" if self.error_code is None else "error",
            "status_description": self.error_message,
            "attributes": attributes,
            "events": [],
            "service_name": service_name,
            "scope_name": "iii.engine",
            "source": "engine",
            "worker_id": None,
        }


def parse_parent(traceparent: str | None) -> tuple[int, int, bool]:
    """``(trace_id, parent_span_id, sampled)`` of the caller's W3C ``traceparent``, else of the
    current OTel span; ``(0, 0, False)`` when there is no parent."""
    trace_id = parent_id = 0
    sampled = False
    if traceparent and len(traceparent) >= 55 and traceparent[2] == "-":
        try:
            trace_id = int(traceparent[3:35], 16)
            parent_id = int(traceparent[36:52], 16)
            sampled = bool(int(traceparent[53:55], 16) & 1)
        except ValueError:
            trace_id = parent_id = 0
        if not parent_id:
            trace_id = 0
    if not trace_id:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            return ctx.trace_id, ctx.span_id, bool(ctx.trace_flags.sampled)
        return 0, 0, False
    return trace_id, parent_id, sampled


class EngineSpanFactory:
    """Starts engine spans: parses the caller's W3C ``traceparent`` and decides sampling."""

    def __init__(self, sampling_ratio: float) -> None:
        # TraceIdRatioBased samples when the trace id's low 64 bits are below this bound.
        self.bound = round(sampling_ratio * (_TRACE_ID_LIMIT + 1))

    def sampled(self, trace_id: int, function_id: str, parent_sampled: bool | None) -> bool:
        """Whether the span of a call to ``function_id`` is recorded: a child follows its
        parent (``parent_sampled``); a root is sampled by its trace id's ratio."""
        if parent_sampled is not None:
            return parent_sampled
        return (trace_id & _TRACE_ID_LIMIT) < self.bound

    def start(
        self, traceparent: str | None, function_id: str, worker_id: str | None
    ) -> tuple[EngineSpan | None, str]:
        """Return the span (None when not sampled) and the ``traceparent`` to send on."""
        trace_id, parent_id, parent_sampled = parse_parent(traceparent)
        if not trace_id:
            trace_id = random.getrandbits(128) or 1
            parent_id = 0
        sampled = self.sampled(trace_id, function_id, parent_sampled if parent_id else None)
        span_id = random.getrandbits(64) or 1
        if not sampled:
            # No span, but the decision travels on so that the worker does not sample either.
            return None, f"00-{trace_id:032x}-{span_id:016x}-00"
        return (
            EngineSpan(trace_id, span_id, parent_id, function_id, worker_id),
            f"00-{trace_id:032x}-{span_id:016x}-01",
        )
