"""The Redis lock: several engines on one real Redis fire each tick exactly once."""

from __future__ import annotations

import collections
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cron_helpers import cron_module, fire_at
from iii_cron import ManualClock
from iii_cron.redis_lock import RedisCronConfig, RedisCronLock

from iii_core import ConfigError
from iii_core.testing import free_port, raw_worker, redis_server, wait_until

TICK = datetime(2026, 3, 9, 12, 0, 0, tzinfo=UTC)


def redis_config(redis_url: str, **extra: Any) -> dict[str, Any]:
    adapter = {
        "class": "modules::cron::RedisCronAdapter",
        "config": {"redis_url": redis_url, **extra},
    }
    return {"modules": [{"class": "modules::cron::CronModule", "config": {"adapter": adapter}}]}


def stop_redis(url: str) -> None:
    """Shut the test's redis-server down (a real outage, not a mock)."""
    import redis

    with contextlib.suppress(redis.ConnectionError):
        redis.Redis.from_url(url).shutdown(nosave=True)


async def two_engines_fire(engine_factory: Any, config: dict[str, Any], ticks: int) -> list[str]:
    """Two engines, each with a worker registering the same job id; the scheduled times fired."""
    fired: list[str] = []

    async def tick(data: Any) -> None:
        fired.append(data["scheduled_time"])

    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            engine = await stack.enter_async_context(engine_factory(config))
            worker = await stack.enter_async_context(raw_worker(engine))
            await worker.register_function("tick", tick)
            await worker.register_trigger(
                "cron", "tick", {"expression": "* * * * * *"}, trigger_id="shared-job"
            )
        await wait_until(lambda: len(set(fired)) >= ticks, 20, f"{ticks} distinct ticks")
    return fired


async def test_two_engines_fire_each_tick_exactly_once(engine_factory: Any, redis_url: str) -> None:
    fired = await two_engines_fire(engine_factory, redis_config(redis_url), 5)
    duplicates = [t for t, n in collections.Counter(fired).items() if n > 1]
    assert not duplicates, f"ticks fired more than once: {duplicates}"


async def test_control_local_locks_fire_on_every_engine(engine_factory: Any) -> None:
    """The same run with the local lock duplicates ticks: the Redis test above can fail."""
    config = {"modules": [{"class": "modules::cron::CronModule"}]}
    fired = await two_engines_fire(engine_factory, config, 3)
    assert any(n > 1 for n in collections.Counter(fired).values()), fired


async def test_lock_claims_a_tick_once_and_releases_only_its_own(redis_url: str) -> None:
    first = RedisCronLock(RedisCronConfig(redis_url=redis_url))
    second = RedisCronLock(RedisCronConfig(redis_url=redis_url))
    await first.start()
    await second.start()
    try:
        token = await first.acquire("job", TICK)
        assert token is not None
        assert await second.acquire("job", TICK) is None, "held"
        await second.release("job", "not-the-token")  # compare-and-delete: not released
        assert await second.acquire("job", TICK + timedelta(seconds=1)) is None, "still held"
        await first.release("job", token)
        assert await second.acquire("job", TICK) is None, "a late engine cannot re-fire"
        later = await second.acquire("job", TICK + timedelta(seconds=1))
        assert later is not None, "the next tick is free"
        assert await first.acquire("other-job", TICK) is not None, "jobs are independent"
    finally:
        await first.close()
        await second.close()


async def test_unreachable_redis_fails_start_up(engine_factory: Any) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        async with engine_factory(redis_config(url, connect_timeout_ms=1000)):
            pass


async def test_redis_adapter_config_is_checked(engine_factory: Any, redis_url: str) -> None:
    with pytest.raises(ConfigError, match="lock_tll_ms"):
        async with engine_factory(redis_config(redis_url, lock_tll_ms=5)):
            pass
    async with engine_factory(redis_config(redis_url, lock_ttl_ms=5000)) as engine:
        lock = cron_module(engine).lock
        assert isinstance(lock, RedisCronLock) and lock.config.lock_ttl_ms == 5000


async def test_redis_outage_skips_ticks_and_keeps_the_schedule(engine_factory: Any) -> None:
    calls: list[Any] = []

    async def tick(data: Any) -> None:
        calls.append(data)

    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    with redis_server() as url:
        engine_cm = engine_factory(redis_config(url, connect_timeout_ms=1000))
        engine = await engine_cm.__aenter__()
        try:
            module = cron_module(engine)
            clock = ManualClock(start)
            module.clock = clock
            async with raw_worker(engine) as w:
                await w.register_function("tick", tick)
                await w.register_trigger("cron", "tick", {"expression": "* * * * * *"})
                await fire_at(clock, start + timedelta(seconds=1))
                await wait_until(lambda: len(calls) == 1)
                stop_redis(url)
                await fire_at(clock, start + timedelta(seconds=2))
                await wait_until(lambda: module.stats.errors == 1, 10, "the lock error")
                # The job is still scheduled.
                await wait_until(lambda: clock.deadlines == [start + timedelta(seconds=3)])
                assert len(calls) == 1 and len(module.jobs) == 1
        finally:
            await engine_cm.__aexit__(None, None, None)
