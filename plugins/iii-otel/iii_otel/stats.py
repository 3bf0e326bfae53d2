"""Invocation counters and latency histograms, kept as plain numbers on the hot path.

Prometheus text and ``engine::metrics::list`` are computed from these at read time, so an
invocation costs a dict lookup, two additions and a ``bisect``; no lock, no client library call.
The number of ``(function_id, status)`` series is capped (``metrics_max_series``): beyond it new
function ids are counted under ``function_id="_other"`` (two more series, ok and
error) so that workers registering random ids cannot grow memory without bound.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

#: Histogram bucket upper bounds, in seconds (Prometheus' defaults extended to 60 s).
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
OTHER = "_other"


class Series:
    """Count, sum and per-bucket counts (not cumulative) of one ``(function_id, status)``."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)


class InvocationStats:
    def __init__(self, max_series: int, recent: int = 1000) -> None:
        self.max_series = max_series
        self.series: dict[tuple[str, str], Series] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.recent: deque[float] = deque(maxlen=recent)
        self.total = 0
        self.success = 0
        self.error = 0

    def observe(self, function_id: str, error_code: str | None, seconds: float) -> None:
        status = "ok" if error_code is None else "error"
        key = (function_id, status)
        series = self.series.get(key)
        if series is None:
            series = self._new_series(key)
        series.count += 1
        series.sum += seconds
        series.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.recent.append(seconds)
        self.total += 1
        if error_code is None:
            self.success += 1
        else:
            self.error += 1
            ekey = (key[0] if key in self.series else OTHER, error_code)
            if ekey in self.errors or len(self.errors) < self.max_series:
                self.errors[ekey] = self.errors.get(ekey, 0) + 1
            else:
                okey = (OTHER, OTHER)
                self.errors[okey] = self.errors.get(okey, 0) + 1

    def _new_series(self, key: tuple[str, str]) -> Series:
        if len(self.series) >= self.max_series:
            key = (OTHER, key[1])
            existing = self.series.get(key)
            if existing is not None:
                return existing
        series = self.series[key] = Series()
        return series

    def by_function(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (fid, status), series in self.series.items():
            entry = out.setdefault(fid, {"total": 0, "success": 0, "error": 0})
            entry["total"] += series.count
            entry["success" if status == "ok" else "error"] += series.count
        return out

    def duration_totals(self) -> tuple[int, float]:
        """Finished invocations and their summed duration in seconds since start (the
        histograms' count and sum over every series; read-time work, nothing on the hot path)."""
        return self.total, sum(series.sum for series in list(self.series.values()))

    def performance(self) -> dict[str, float]:
        """Latency summary (milliseconds) of the most recent invocations."""
        values = sorted(self.recent)
        if not values:
            return {f"{k}_duration_ms": 0.0 for k in ("avg", "p50", "p95", "p99", "min", "max")}

        def pct(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3)

        return {
            "avg_duration_ms": round(sum(values) / len(values) * 1000, 3),
            "p50_duration_ms": pct(0.50),
            "p95_duration_ms": pct(0.95),
            "p99_duration_ms": pct(0.99),
            "min_duration_ms": round(values[0] * 1000, 3),
            "max_duration_ms": round(values[-1] * 1000, 3),
        }
