"""Helpers shared by the cron tests (a plain module: test files import it by name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from iii_cron import CronModule, ManualClock

from iii_core import Engine
from iii_core.testing import wait_until

CRON_CONFIG: dict[str, Any] = {"modules": [{"class": "modules::cron::CronModule"}]}


def cron_module(engine: Engine) -> CronModule:
    return next(m for m in engine.modules if isinstance(m, CronModule))


async def fire_at(clock: ManualClock, when: datetime) -> None:
    """Wait until the (single) job sleeps until ``when``, then move the clock there."""
    await wait_until(lambda: clock.deadlines == [when], 10, f"a job sleeping until {when}")
    clock.set(when)
