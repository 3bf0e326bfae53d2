"""Metric rollups: time buckets of the engine's readable accumulators (``engine::rollups::list``).

A sampler (:meth:`Rollups.sample`, called every ``rollup_interval_ms`` by a task of the module)
reads the accumulators of :mod:`iii_otel.accumulators` and the invocation histograms' totals,
and adds one sample per metric to the current bucket of each level: ``1m`` (the last 60
buckets), ``5m`` (288, 24 h) and ``1h`` (168, 7 days).  A bucket is ``[start_time, start_time +
width)`` in unix ms, aligned on its width; the sample's time (the sampler's clock, wall time by
default) picks the bucket.  Updating the three levels from the same samples makes a ``5m`` or
``1h`` bucket exactly the aggregate of the ``1m`` buckets it spans.

Samples: for a counter (``iii.invocations.*``, ``iii.workers.spawns|deaths``) the increase since
the previous sample (the first sample counts from zero, the value when the module started), so a
bucket's ``sum`` is the counter's increase in it; for the gauge ``iii.workers.active`` its value.
``count`` is the number of samples, ``avg`` is ``sum / count``, ``min``/``max``/``last`` are over
the samples.  ``iii.invocation.duration_ms`` is different: from the histograms' count and sum
deltas, ``count`` is the number of invocations finished in the bucket, ``sum`` their summed
duration (ms) and ``avg`` the mean (null when none finished); per-invocation values are not kept
(that would be work on the invocation path), so its ``min``, ``max`` and ``last`` are null.

Memory is bounded: at most (60 + 288 + 168) buckets x 8 metrics = 4128 buckets (each a small
slotted object), whatever the traffic or uptime.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from iii_core.errors import DeserializationError
from iii_otel.accumulators import COUNTERS, GAUGES, read_accumulator

if TYPE_CHECKING:
    from iii_otel.module import OtelModule

#: level → (bucket width in ms, buckets kept).
LEVELS: dict[str, tuple[int, int]] = {
    "1m": (60_000, 60),
    "5m": (300_000, 288),
    "1h": (3_600_000, 168),
}
DURATION = "iii.invocation.duration_ms"
METRICS = (*COUNTERS, *GAUGES, DURATION)
MAX_BUCKETS = sum(size for _, size in LEVELS.values()) * len(METRICS)
QUERY_KEYS = ("start_time", "end_time", "level", "metric_name")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _round(value: float | None) -> float | None:
    return value if value is None or isinstance(value, int) else round(value, 3)


class Bucket:
    """One metric's aggregate over one time bucket."""

    __slots__ = ("count", "last", "max", "min", "start", "sum")

    def __init__(self, start: int) -> None:
        self.start = start
        self.count = 0
        self.sum: float = 0
        self.min: float | None = None
        self.max: float | None = None
        self.last: float | None = None

    def add(self, count: int, total: float, value: float | None) -> None:
        """Add ``count`` observations summing to ``total``; ``value`` (one sample) also updates
        ``min``, ``max`` and ``last``."""
        self.count += count
        self.sum += total
        if value is not None:
            self.min = value if self.min is None else min(self.min, value)
            self.max = value if self.max is None else max(self.max, value)
            self.last = value

    def as_dict(self, metric_name: str, level: str, width: int) -> dict[str, Any]:
        return {
            "metric_name": metric_name,
            "level": level,
            "start_time": self.start,
            "end_time": self.start + width,
            "count": self.count,
            "sum": _round(self.sum),
            "min": self.min,
            "max": self.max,
            "avg": round(self.sum / self.count, 3) if self.count else None,
            "last": self.last,
        }


@attrs.define(frozen=True)
class RollupQuery:
    """The input of ``engine::rollups::list`` as understood (defaults filled in)."""

    start_time: int | None = None
    end_time: int | None = None
    level: str = "1m"
    metric_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def parse_query(args: dict[str, Any], function_id: str) -> RollupQuery:
    """Validate the input; raise :class:`DeserializationError` naming the key and bad value."""

    def bad(message: str) -> DeserializationError:
        return DeserializationError(f"Failed to deserialize input for {function_id}: {message}")

    unknown = sorted(str(k) for k in args if k not in QUERY_KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(QUERY_KEYS)})")
    times: dict[str, int | None] = {}
    for key in ("start_time", "end_time"):
        value = args.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad(f"{key} must be an integer (unix ms), got {value!r}")
        if value is not None and value < 0:
            raise bad(f"{key} must be >= 0, got {value!r}")
        times[key] = value
    start, end = times["start_time"], times["end_time"]
    if start is not None and end is not None and start > end:
        raise bad(f"start_time ({start}) is after end_time ({end})")
    level = args.get("level")
    if level is None:
        level = "1m"
    if not isinstance(level, str) or level not in LEVELS:
        raise bad(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    name = args.get("metric_name")
    if name is not None and name not in METRICS:
        raise bad(f"metric_name must be one of {', '.join(METRICS)}, got {name!r}")
    return RollupQuery(start_time=start, end_time=end, level=level, metric_name=name)


class Rollups:
    """The bounded bucket rings and the sampler that fills them."""

    def __init__(
        self,
        module: OtelModule,
        interval_ms: int,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.module = module
        self.interval_s = interval_ms / 1000
        self.clock = clock
        self.rings: dict[str, dict[str, deque[Bucket]]] = {
            level: {metric: deque(maxlen=size) for metric in METRICS}
            for level, (_, size) in LEVELS.items()
        }
        # Counters start at zero with the module: the first sample counts from there.
        self._previous: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._duration: tuple[int, float] = (0, 0.0)

    def sample(self) -> None:
        """Read every metric once and add the sample to the current bucket of each level."""
        now = self.clock()
        module = self.module
        for name in COUNTERS:
            current = read_accumulator(module, name) or 0
            increase = current - self._previous[name]
            self._previous[name] = current
            self._record(now, name, 1, increase, increase)
        for name in GAUGES:
            value = read_accumulator(module, name) or 0
            self._record(now, name, 1, value, value)
        count, seconds = module.stats.duration_totals()
        before_count, before_seconds = self._duration
        self._duration = (count, seconds)
        self._record(now, DURATION, count - before_count, (seconds - before_seconds) * 1000, None)

    def _record(self, now: int, metric: str, count: int, total: float, value: float | None) -> None:
        for level, (width, _) in LEVELS.items():
            ring = self.rings[level][metric]
            start = now - now % width
            # The newest bucket also takes samples whose time went backwards (clock changes),
            # so a ring stays ordered.
            if ring and ring[-1].start >= start:
                bucket = ring[-1]
            else:
                bucket = Bucket(start)
                ring.append(bucket)
            bucket.add(count, total, value)

    def list(self, query: RollupQuery) -> list[dict[str, Any]]:
        """The buckets of ``query.level`` overlapping ``[start_time, end_time]``, oldest first
        (the current, still filling bucket included)."""
        width, _ = LEVELS[query.level]
        out: list[dict[str, Any]] = []
        for metric, ring in self.rings[query.level].items():
            if query.metric_name is not None and metric != query.metric_name:
                continue
            for bucket in ring:
                if query.start_time is not None and bucket.start + width <= query.start_time:
                    continue
                if query.end_time is not None and bucket.start > query.end_time:
                    continue
                out.append(bucket.as_dict(metric, query.level, width))
        out.sort(key=lambda b: b["start_time"])  # stable: metrics stay in METRICS order
        return out

    def __len__(self) -> int:
        """Buckets stored, over every level and metric (at most :data:`MAX_BUCKETS`)."""
        return sum(len(ring) for rings in self.rings.values() for ring in rings.values())
