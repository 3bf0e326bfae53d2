"""The payload time format and the controllable clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from iii_cron import ManualClock, SystemClock
from iii_cron.clock import rfc3339

from iii_core.testing import wait_until


def test_rfc3339_matches_chrono() -> None:
    base = datetime(2026, 3, 9, 12, 0, 0, tzinfo=UTC)
    assert rfc3339(base) == "2026-03-09T12:00:00+00:00"
    assert rfc3339(base.replace(microsecond=250_000)) == "2026-03-09T12:00:00.250+00:00"
    assert rfc3339(base.replace(microsecond=123_456)) == "2026-03-09T12:00:00.123456+00:00"
    paris = base.astimezone(timezone(timedelta(hours=1)))
    assert rfc3339(paris) == "2026-03-09T12:00:00+00:00"


async def test_manual_clock_wakes_sleepers_in_order() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ManualClock(start)
    woke: list[int] = []

    async def sleeper(n: int) -> None:
        await clock.sleep_until(start + timedelta(seconds=n))
        woke.append(n)

    tasks = [asyncio.create_task(sleeper(n)) for n in (2, 1)]
    await wait_until(lambda: len(clock.deadlines) == 2)
    assert clock.deadlines == [start + timedelta(seconds=1), start + timedelta(seconds=2)]
    clock.advance(1)
    await wait_until(lambda: woke == [1])
    clock.advance(5)
    await asyncio.gather(*tasks)
    assert woke == [1, 2] and clock.deadlines == []
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(start)


async def test_system_clock_never_wakes_early() -> None:
    clock = SystemClock()
    target = clock.now() + timedelta(milliseconds=150)
    await clock.sleep_until(target)
    assert clock.now() >= target
