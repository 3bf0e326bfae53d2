"""Bounded in-memory stores of spans, log records and metric data points.

Each store is a ``deque`` with a ``maxlen``: adding to a full store drops the oldest entry, so
memory stays bounded whatever workers send.  Engine spans are kept as they are
(:class:`~iii_otel.engine_spans.EngineSpan`, or the SDK's ``ReadableSpan`` for other modules'
spans) and converted to records only when somebody reads the store, which keeps ending a span
on the invocation hot path to one ``append``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from iii_otel.engine_spans import EngineSpan
from iii_otel.otlp import span_record


def to_record(item: EngineSpan | ReadableSpan | dict[str, Any], service: str) -> dict[str, Any]:
    """A stored-span record of whatever kind of span the store or export buffer holds."""
    if isinstance(item, dict):
        return item
    if isinstance(item, EngineSpan):
        return item.record(service)
    return span_record(item)


class SpanStore:
    """The last ``max_spans`` spans, from the engine and from workers' ``OTLP`` frames."""

    def __init__(self, max_spans: int, service_name: str) -> None:
        self._items: deque[EngineSpan | ReadableSpan | dict[str, Any]] = deque(maxlen=max_spans)
        self.max_spans = max_spans
        self.service_name = service_name
        self.dropped_total = 0

    def add(self, item: EngineSpan | ReadableSpan | dict[str, Any]) -> None:
        if len(self._items) == self.max_spans:
            self.dropped_total += 1
        self._items.append(item)

    def records(self) -> list[dict[str, Any]]:
        return [to_record(item, self.service_name) for item in list(self._items)]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class RecordStore:
    """A bounded, optionally time-limited list of dict records (logs or metric points).

    ``time_key`` names the record's unix-nanosecond timestamp used for retention.
    """

    def __init__(self, max_count: int, retention_seconds: int | None, time_key: str) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=max_count)
        self.max_count = max_count
        self.retention_ns = retention_seconds * 1_000_000_000 if retention_seconds else None
        self.time_key = time_key
        self.dropped_total = 0

    def add(self, record: dict[str, Any]) -> None:
        if len(self._items) == self.max_count:
            self.dropped_total += 1
        self._items.append(record)
        if self.retention_ns is not None:
            self._expire()

    def _expire(self) -> None:
        assert self.retention_ns is not None
        cutoff = time.time_ns() - self.retention_ns
        items = self._items
        while items and items[0].get(self.time_key, 0) < cutoff:
            items.popleft()

    def records(self) -> list[dict[str, Any]]:
        if self.retention_ns is not None:
            self._expire()
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
