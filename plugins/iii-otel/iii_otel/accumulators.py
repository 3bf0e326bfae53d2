"""The engine's readable accumulators (reference §6.2), read by alerts and rollups.

Counters (``iii.invocations.total|success|error|deferred``, ``iii.workers.spawns|deaths``) only
grow while the module runs (they start at zero with it); ``iii.workers.active`` is a gauge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iii_otel.module import OtelModule

COUNTERS = (
    "iii.invocations.total",
    "iii.invocations.success",
    "iii.invocations.error",
    "iii.invocations.deferred",
    "iii.workers.spawns",
    "iii.workers.deaths",
)
GAUGES = ("iii.workers.active",)
READABLE = COUNTERS + GAUGES
#: Prefixes of the engine's readable accumulators: a name under them must be one of those.
RESERVED_PREFIXES = ("iii.invocations.", "iii.workers.")


def read_accumulator(module: OtelModule, name: str) -> int | None:
    """The current value of the accumulator ``name``; None when it is not one of
    :data:`READABLE`."""
    if name == "iii.invocations.total":
        return module.stats.total
    if name == "iii.invocations.success":
        return module.stats.success
    if name == "iii.invocations.error":
        return module.stats.error
    if name == "iii.invocations.deferred":
        return 0  # this engine never counts invocations as deferred
    if name == "iii.workers.spawns":
        return module.observer.spawns_total
    if name == "iii.workers.deaths":
        return module.observer.deaths_total
    if name == "iii.workers.active":
        return module.engine.workers.active_count()
    return None
