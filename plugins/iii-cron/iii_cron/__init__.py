"""iii cron module: the ``cron`` trigger type and its lock adapters."""

from iii_cron.clock import Clock, ManualClock, SystemClock
from iii_cron.job import CronStats
from iii_cron.module import CronModule
from iii_cron.schedule import CronSchedule

__all__ = ["Clock", "CronModule", "CronSchedule", "CronStats", "ManualClock", "SystemClock"]
