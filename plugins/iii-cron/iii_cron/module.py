"""``modules::cron::CronModule``: the ``cron`` trigger type.

Each registered trigger becomes a :class:`~iii_cron.job.CronJob` task keyed by the trigger id.
Jobs live exactly as long as their triggers: unregistering (or the owning worker disconnecting)
cancels the task at once, and shutdown cancels them all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import attrs

from iii_core import Engine, Module, RegistrationError, Trigger, structure
from iii_core.errors import ConfigError
from iii_cron.clock import Clock, SystemClock
from iii_cron.job import CronJob, CronStats
from iii_cron.locks import CronLock
from iii_cron.schedule import CronSchedule

log = logging.getLogger("iii.cron")

TRIGGER_TYPE = "cron"
WHERE = "modules::cron::CronModule config"
DEFAULT_ADAPTER = "modules::cron::LocalCronAdapter"


@attrs.define(frozen=True)
class CronConfig:
    adapter: dict[str, Any] | None = None
    """``{class, config}`` of the lock adapter; the local lock when omitted."""
    max_jobs: int = 10_000
    """Registering more cron triggers than this is refused (each job is a task)."""


class CronModule(Module):
    name = "CronModule"

    def __init__(
        self, engine: Engine, config: dict[str, Any] | None, *, clock: Clock | None = None
    ) -> None:
        super().__init__(engine, config)
        self.config = structure(CronConfig, config, WHERE)
        if self.config.max_jobs <= 0:
            raise ConfigError(f"{WHERE}: 'max_jobs' must be positive, got {self.config.max_jobs}")
        self.lock: CronLock = engine.plugins.create_adapter(
            "cron", self.config.adapter, WHERE, default_class=DEFAULT_ADAPTER
        )
        self.clock: Clock = clock or SystemClock()
        """Jobs registered after this is replaced use the new clock (tests swap in a
        :class:`~iii_cron.clock.ManualClock`)."""
        self.jobs: dict[str, CronJob] = {}
        self.stats = CronStats()

    def gauges(self) -> dict[str, int]:
        return {
            "cron_jobs": len(self.jobs),
            "cron_fired_total": self.stats.fired,
            "cron_errors_total": self.stats.errors,
            "cron_skipped_condition_total": self.stats.skipped_condition,
            "cron_skipped_lock_total": self.stats.skipped_lock,
        }

    async def initialize(self) -> None:
        await self.lock.start()
        await self.engine.register_trigger_type(
            TRIGGER_TYPE, "Call a function on a cron schedule", self
        )

    async def register_trigger(self, trigger: Trigger) -> None:
        """Start a job; raise to reject the config (the engine tells the worker why)."""
        config = trigger.config
        if not isinstance(config, dict):
            raise RegistrationError(
                f"cron trigger config must be an object with 'expression', got {config!r}"
            )
        if trigger.id in self.jobs:
            raise RegistrationError(f"Cron job '{trigger.id}' is already registered")
        if len(self.jobs) >= self.config.max_jobs:
            raise RegistrationError(
                f"too many cron jobs ({self.config.max_jobs}, the module's 'max_jobs')"
            )
        schedule = CronSchedule.parse(
            config.get("expression"), config.get("timezone"), now=self.clock.now()
        )
        job = CronJob(
            engine=self.engine,
            job_id=trigger.id,
            function_id=trigger.function_id,
            config=config,
            schedule=schedule,
            lock=self.lock,
            clock=self.clock,
            totals=self.stats,
        )
        self.jobs[trigger.id] = job
        # Engine.spawn returns the Task that asyncio.ensure_future makes of a coroutine.
        job.task = cast(
            "asyncio.Task[None]", self.engine.spawn(job.run(), name=f"cron job {trigger.id}")
        )

        def ended(_task: asyncio.Future[None], job: CronJob = job) -> None:
            self._job_ended(job)

        job.task.add_done_callback(ended)

    def _job_ended(self, job: CronJob) -> None:
        # A job whose expression has no fire time left ends by itself; forget it.
        if self.jobs.get(job.job_id) is job:
            del self.jobs[job.job_id]

    async def unregister_trigger(self, trigger: Trigger) -> None:
        job = self.jobs.pop(trigger.id, None)
        if job is not None:
            await _cancel([job])

    async def shutdown(self) -> None:
        jobs = list(self.jobs.values())
        self.jobs.clear()
        await _cancel(jobs)
        await self.lock.close()


async def _cancel(jobs: list[CronJob]) -> None:
    """Cancel the jobs' tasks and wait (bounded) until each released its lock."""
    tasks = [job.task for job in jobs if job.task is not None and not job.task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=3.0)
        for task in pending:
            log.warning("cron task %s did not stop within 3 s", task.get_name())
