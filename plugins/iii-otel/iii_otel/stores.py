"""Bounded in-memory stores of spans, log records and metric data points.

Each store is a ``deque`` with a ``maxlen``: adding to a full store drops the oldest entry, so
memory stays bounded whatever workers send.  Engine spans are kept as the SDK's ``ReadableSpan``
objects and converted to records only when somebody reads the store, which keeps ending a span
on the invocation hot path to one ``append``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from iii_otel.otlp import span_record


class SpanStore:
    """The last ``max_spans`` spans, from the engine and from workers' ``OTLP`` frames."""

    def __init__(self, max_spans: int) -> None:
        self._items: deque[ReadableSpan | dict[str, Any]] = deque(maxlen=max_spans)
        self.max_spans = max_spans
        self.dropped_total = 0

    def add(self, item: ReadableSpan | dict[str, Any]) -> None:
        if len(self._items) == self.max_spans:
            self.dropped_total += 1
        self._items.append(item)

    def records(self) -> list[dict[str, Any]]:
        return [item if isinstance(item, dict) else span_record(item) for item in list(self._items)]

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
