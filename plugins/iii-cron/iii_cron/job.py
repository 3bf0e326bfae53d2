"""One cron job: a task that sleeps until the next fire time, claims the tick, calls.

The next fire time always comes from the expression (never "last run + interval"), so a job does
not drift.  It is computed after the call returns, from the later of now and the tick just
handled: a handler slower than the interval skips the ticks it overran (no catch-up, as in the
reference), and an early wake-up can never fire one tick twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from opentelemetry import propagate, trace

from iii_core.conditions import condition_allows
from iii_cron.clock import Clock, rfc3339
from iii_cron.locks import CronLock
from iii_cron.schedule import CronSchedule

if TYPE_CHECKING:
    from iii_core import Engine

log = logging.getLogger("iii.cron")
tracer = trace.get_tracer("iii.cron")


@attrs.define
class CronStats:
    """Counters of one job, or of every job of a module."""

    fired: int = 0
    """Handler calls that returned a result."""
    errors: int = 0
    """Handler, condition and lock errors (each is logged; the schedule goes on)."""
    skipped_condition: int = 0
    """Ticks whose condition returned false."""
    skipped_lock: int = 0
    """Ticks another engine (or a still-running call) held."""


class CronJob:
    def __init__(
        self,
        *,
        engine: Engine,
        job_id: str,
        function_id: str,
        config: dict[str, Any],
        schedule: CronSchedule,
        lock: CronLock,
        clock: Clock,
        totals: CronStats,
    ) -> None:
        self.engine = engine
        self.job_id = job_id
        self.function_id = function_id
        self.config = config
        self.schedule = schedule
        self.lock = lock
        self.clock = clock
        self.stats = CronStats()
        self._totals = totals
        self.task: asyncio.Task[None] | None = None

    def _count(self, counter: str) -> None:
        for stats in (self.stats, self._totals):
            setattr(stats, counter, getattr(stats, counter) + 1)

    async def run(self) -> None:
        last: datetime | None = None
        while True:
            base = self.clock.now()
            if last is not None and base < last:
                base = last
            scheduled = self.schedule.next_after(base)
            if scheduled is None:
                log.info("cron job %s has no fire time left; it stops", self.job_id)
                return
            await self.clock.sleep_until(scheduled)
            last = scheduled
            await self.tick(scheduled)

    async def tick(self, scheduled: datetime) -> None:
        """Claim, fire and release one tick; every failure is logged and counted, never raised."""
        try:
            token = await self.lock.acquire(self.job_id, scheduled)
        except Exception as exc:  # a lock backend outage skips ticks only
            self._count("errors")
            log.error("cron job %s: lock failed, tick %s skipped: %s", self.job_id, scheduled, exc)
            return
        if token is None:
            self._count("skipped_lock")
            log.debug("cron job %s: tick %s held elsewhere, skipped", self.job_id, scheduled)
            return
        try:
            await self._fire(scheduled)
        finally:
            try:
                await self.lock.release(self.job_id, token)
            except Exception as exc:  # the lock expires on its own
                log.warning("cron job %s: releasing the lock failed: %s", self.job_id, exc)

    async def _fire(self, scheduled: datetime) -> None:
        payload = {
            "trigger": "cron",
            "job_id": self.job_id,
            "scheduled_time": rfc3339(scheduled),
            "actual_time": rfc3339(self.clock.now()),
        }
        with tracer.start_as_current_span(
            f"call {self.function_id}",
            kind=trace.SpanKind.PRODUCER,
            attributes={"faas.trigger": "timer", "iii.cron.job_id": self.job_id},
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            traceparent = carrier.get("traceparent")
            try:
                allowed = await condition_allows(
                    self.engine, self.config, payload, traceparent=traceparent
                )
            except Exception as exc:  # a failing condition skips the tick
                self._count("errors")
                log.warning("cron job %s: condition failed, tick skipped: %s", self.job_id, exc)
                return
            if not allowed:
                self._count("skipped_condition")
                return
            try:
                await self.engine.call(self.function_id, payload, traceparent=traceparent)
            except Exception as exc:  # a failing handler keeps its schedule
                self._count("errors")
                log.warning("cron job %s: %s failed: %s", self.job_id, self.function_id, exc)
                return
            self._count("fired")
