"""Time as the cron jobs see it, behind a small protocol so that tests control it.

Jobs only ever ask "what time is it" and "wake me at this instant".  :class:`SystemClock` answers
with the wall clock; :class:`ManualClock` only moves when a test moves it, so schedules, time
zones and DST transitions are tested without sleeping.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What a cron job needs from time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once :meth:`now` is at or past ``when``."""
        ...


class SystemClock:
    """The wall clock.  Sleeps are re-checked against it, so an early wake-up (event-loop timer
    granularity, monotonic vs. wall clock) never fires a tick before its time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (delay := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when told (:meth:`set` / :meth:`advance`); for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            return
        entry = (when, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def deadlines(self) -> list[datetime]:
        """The instants sleepers wait for, earliest first (one per sleeping job)."""
        return sorted(when for when, _ in self._sleepers)

    def set(self, when: datetime) -> None:
        """Move to ``when`` (never backwards) and wake every sleeper whose instant has come."""
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError(f"ManualClock cannot go back from {self._now} to {when}")
        self._now = when
        for deadline, fut in list(self._sleepers):
            if deadline <= when and not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))


def rfc3339(instant: datetime) -> str:
    """UTC RFC 3339 with a ``+00:00`` offset and chrono's fraction rule (none, 3 or 6 digits,
    the shortest that is exact), the format of the reference engine's cron payloads."""
    instant = instant.astimezone(UTC)
    micros = instant.microsecond
    if micros == 0:
        fraction = ""
    elif micros % 1000 == 0:
        fraction = f".{micros // 1000:03d}"
    else:
        fraction = f".{micros:06d}"
    return f"{instant:%Y-%m-%dT%H:%M:%S}{fraction}+00:00"
