"""The cron module in a real engine, driven by workers over real sockets."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cron_helpers import CRON_CONFIG, cron_module, fire_at
from iii_cron import ManualClock
from iii_cron.local_lock import LocalCronLock

from iii_core import ConfigError
from iii_core.plugins import Plugins
from iii_core.testing import raw_worker, wait_until

WHOLE_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
FRACTIONAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?\+00:00$")
START = datetime(2026, 3, 7, 12, 0, 0, tzinfo=UTC)  # a Saturday


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def next_message(worker: Any, kind: str, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            msg = await worker.inbox.get()
            if msg.get("type") == kind:
                return msg


async def test_every_second_fires_on_time(engine_factory: Any) -> None:
    calls: list[tuple[dict[str, Any], datetime]] = []

    async def tick(data: Any) -> None:
        calls.append((data, datetime.now(UTC)))

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        await w.register_function("tick", tick)
        trigger_id = await w.register_trigger("cron", "tick", {"expression": "* * * * * *"})
        await wait_until(lambda: len(calls) >= 3, 15, "three ticks")
        assert cron_module(engine).stats.errors == 0
    scheduled = [parse(data["scheduled_time"]) for data, _ in calls]
    assert scheduled == sorted(set(scheduled)), "each tick once, in order"
    for data, received in calls:
        assert set(data) == {"trigger", "job_id", "scheduled_time", "actual_time"}
        assert data["trigger"] == "cron" and data["job_id"] == trigger_id
        assert WHOLE_SECONDS.match(data["scheduled_time"]), data
        assert FRACTIONAL.match(data["actual_time"]), data
        lateness = parse(data["actual_time"]) - parse(data["scheduled_time"])
        # Never early; late by at most a second even on a loaded machine.
        assert timedelta(0) <= lateness < timedelta(seconds=1), data
        assert received >= parse(data["scheduled_time"])


async def test_five_field_and_time_zone_with_a_manual_clock(engine_factory: Any) -> None:
    calls: list[dict[str, Any]] = []

    async def tick(data: Any) -> None:
        calls.append(data)

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        clock = ManualClock(START)
        cron_module(engine).clock = clock
        await w.register_function("tick", tick)
        # Weekdays 08:30 in Paris (CET, UTC+1): Monday 2026-03-09 07:30 UTC.
        await w.register_trigger(
            "cron", "tick", {"expression": "30 8 * * 1-5", "timezone": "Europe/Paris"}
        )
        await fire_at(clock, datetime(2026, 3, 9, 7, 30, tzinfo=UTC))
        await wait_until(lambda: len(calls) == 1)
        assert calls[0]["scheduled_time"] == "2026-03-09T07:30:00+00:00"
        assert calls[0]["actual_time"] == "2026-03-09T07:30:00+00:00"
        await wait_until(lambda: clock.deadlines == [datetime(2026, 3, 10, 7, 30, tzinfo=UTC)])


async def test_six_field_time_zone_across_dst(engine_factory: Any) -> None:
    calls: list[dict[str, Any]] = []

    async def tick(data: Any) -> None:
        calls.append(data)

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        clock = ManualClock(START)
        cron_module(engine).clock = clock
        await w.register_function("tick", tick)
        await w.register_trigger(
            "cron", "tick", {"expression": "0 0 9 * * *", "timezone": "America/New_York"}
        )
        await fire_at(clock, datetime(2026, 3, 7, 14, tzinfo=UTC))  # 09:00 EST
        await fire_at(clock, datetime(2026, 3, 8, 13, tzinfo=UTC))  # 09:00 EDT
        await wait_until(lambda: len(calls) == 2)
        assert [c["scheduled_time"] for c in calls] == [
            "2026-03-07T14:00:00+00:00",
            "2026-03-08T13:00:00+00:00",
        ]


async def test_no_drift_and_overrun_ticks_are_skipped(engine_factory: Any) -> None:
    calls: list[dict[str, Any]] = []
    clock = ManualClock(START)

    async def tick(data: Any) -> None:
        calls.append(data)
        if len(calls) == 2:
            clock.advance(25)  # this call "takes" 25 s of a 10 s schedule

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        cron_module(engine).clock = clock
        await w.register_function("tick", tick)
        await w.register_trigger("cron", "tick", {"expression": "*/10 * * * * *"})
        # Woken 0.4 s late: the next tick is still on the expression's grid.
        await wait_until(lambda: clock.deadlines == [START + timedelta(seconds=10)])
        clock.set(START + timedelta(seconds=10.4))
        await fire_at(clock, START + timedelta(seconds=20))
        # The second call overran 12:00:30 and 12:00:40: no catch-up, next is 12:00:50.
        await wait_until(lambda: clock.deadlines == [START + timedelta(seconds=50)])
        assert [c["scheduled_time"] for c in calls] == [
            "2026-03-07T12:00:10+00:00",
            "2026-03-07T12:00:20+00:00",
        ]
        assert calls[0]["actual_time"] == "2026-03-07T12:00:10.400+00:00"


async def test_condition_false_skips_and_error_skips(engine_factory: Any) -> None:
    handled: list[str] = []
    seen: list[dict[str, Any]] = []
    answers: list[Any] = [False, None, True, "boom"]

    async def condition(data: Any) -> Any:
        seen.append(data)
        answer = answers[len(seen) - 1]
        if answer == "boom":
            raise RuntimeError("condition exploded")
        return answer

    async def tick(data: Any) -> None:
        handled.append(data["scheduled_time"])

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        clock = ManualClock(START)
        module = cron_module(engine)
        module.clock = clock
        await w.register_function("cond", condition)
        await w.register_function("tick", tick)
        await w.register_trigger(
            "cron", "tick", {"expression": "* * * * * *", "_condition_path": "cond"}
        )
        for second in range(1, 5):
            await fire_at(clock, START + timedelta(seconds=second))
        await wait_until(lambda: clock.deadlines == [START + timedelta(seconds=5)])
        assert len(seen) == 4 and seen[0]["trigger"] == "cron"
        assert "actual_time" in seen[0] and "scheduled_time" in seen[0]
        # false skips; no result and any other value run; an error skips.
        assert handled == ["2026-03-07T12:00:02+00:00", "2026-03-07T12:00:03+00:00"]
        assert module.stats.skipped_condition == 1
        assert module.stats.errors == 1
        assert module.stats.fired == 2


async def test_handler_error_keeps_the_schedule(engine_factory: Any) -> None:
    calls: list[str] = []

    async def tick(data: Any) -> str:
        calls.append(data["scheduled_time"])
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        return "ok"

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        clock = ManualClock(START)
        module = cron_module(engine)
        module.clock = clock
        await w.register_function("tick", tick)
        trigger_id = await w.register_trigger("cron", "tick", {"expression": "* * * * * *"})
        await fire_at(clock, START + timedelta(seconds=1))
        await fire_at(clock, START + timedelta(seconds=2))
        await wait_until(lambda: module.stats.fired == 1)
        assert len(calls) == 2
        assert module.stats.errors == 1
        assert module.jobs[trigger_id].stats.errors == 1


async def test_unregister_stops_a_running_job_at_once(engine_factory: Any) -> None:
    started = asyncio.Event()

    async def tick(data: Any) -> None:
        started.set()
        await asyncio.sleep(3600)

    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        clock = ManualClock(START)
        module = cron_module(engine)
        module.clock = clock
        await w.register_function("tick", tick)
        trigger_id = await w.register_trigger("cron", "tick", {"expression": "* * * * * *"})
        await fire_at(clock, START + timedelta(seconds=1))
        await asyncio.wait_for(started.wait(), 5)
        task = module.jobs[trigger_id].task
        assert isinstance(module.lock, LocalCronLock) and len(module.lock) == 1
        await w.send({"type": "unregistertrigger", "id": trigger_id, "trigger_type": "cron"})
        await wait_until(lambda: not module.jobs and task is not None and task.done(), 5)
        assert len(module.lock) == 0, "the lock is released"
        assert engine.triggers.get(trigger_id) is None
        assert clock.deadlines == []


async def test_job_removed_when_its_worker_disconnects(engine_factory: Any) -> None:
    calls: list[Any] = []

    async def tick(data: Any) -> None:
        calls.append(data)

    async with engine_factory(CRON_CONFIG) as engine:
        module = cron_module(engine)
        async with raw_worker(engine) as w:
            await w.register_function("tick", tick)
            trigger_id = await w.register_trigger("cron", "tick", {"expression": "* * * * * *"})
            await wait_until(lambda: len(calls) >= 1, 10, "a tick")
            task = module.jobs[trigger_id].task
        await wait_until(lambda: not module.jobs, 5, "the job to go")
        assert task is not None and task.done()
        assert engine.triggers.get(trigger_id) is None
        assert module.stats.errors == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"expression": "bogus"}, "Invalid cron expression 'bogus'"),
        ({"expression": ""}, "Cron expression is required"),
        ({}, "Cron expression is required"),
        ({"expression": "* * * * *", "timezone": "Nowhere/Land"}, "Unknown time zone"),
        ("* * * * *", "must be an object"),
    ],
)
async def test_invalid_config_error_reaches_the_worker(
    engine_factory: Any, config: Any, message: str
) -> None:
    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        await w.register_function("tick", _noop)
        trigger_id = await w.register_trigger("cron", "tick", config)
        result = await next_message(w, "triggerregistrationresult")
        assert result["id"] == trigger_id and result["trigger_type"] == "cron"
        assert result["error"]["code"] == "trigger_registration_failed"
        assert message in result["error"]["message"]
        assert engine.triggers.get(trigger_id) is None
        assert not cron_module(engine).jobs


async def test_shutdown_cancels_every_job(engine_factory: Any) -> None:
    async with engine_factory(CRON_CONFIG) as engine, raw_worker(engine) as w:
        module = cron_module(engine)
        await w.register_function("tick", _noop)
        for n in range(3):
            await w.register_trigger("cron", "tick", {"expression": f"{n} * * * * *"})
        await wait_until(lambda: len(module.jobs) == 3)
        tasks = [job.task for job in module.jobs.values()]
    assert all(task is not None and task.done() for task in tasks)
    assert not module.jobs
    await module.shutdown()  # idempotent


async def test_module_and_adapter_configuration(engine_factory: Any) -> None:
    for name in ("modules::cron::LocalCronAdapter", "modules::cron::KvCronAdapter"):
        config = {
            "modules": [
                {
                    "class": "modules::cron::CronModule",
                    "config": {"adapter": {"class": name, "config": {"lock_ttl_ms": 1000}}},
                }
            ]
        }
        async with engine_factory(config) as engine:
            assert isinstance(cron_module(engine).lock, LocalCronLock)
    bad = {"modules": [{"class": "modules::cron::CronModule", "config": {"max_job": 3}}]}
    with pytest.raises(ConfigError, match="max_job"):
        async with engine_factory(bad):
            pass
    plugins = Plugins()
    plugins.load()
    defaults = [entry.class_name for entry in plugins.default_module_entries()]
    assert "modules::cron::CronModule" in defaults


async def _noop(data: Any) -> None:
    return None


async def test_max_jobs_is_enforced(engine_factory: Any) -> None:
    config = {"modules": [{"class": "modules::cron::CronModule", "config": {"max_jobs": 1}}]}
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        await w.register_function("tick", _noop)
        await w.register_trigger("cron", "tick", {"expression": "0 0 * * * *"})
        second = await w.register_trigger("cron", "tick", {"expression": "0 0 * * * *"})
        result = await next_message(w, "triggerregistrationresult")
        assert result["id"] == second and "max_jobs" in result["error"]["message"]
        assert len(cron_module(engine).jobs) == 1
