"""Metric rollups: the sampler, bucket contents, 1m → 5m/1h aggregation, filters, bounds, errors."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from iii_otel.config import OtelConfig, resolve
from iii_otel.rollups import DURATION, LEVELS, MAX_BUCKETS, METRICS, Rollups, parse_query
from otel_helpers import otel_config, otel_module, register_demo_functions, scrape

from iii_core import ConfigError, Engine
from iii_core.testing import RawWorker, raw_worker, wait_until

HOUR = 3_600_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR  # an hour boundary, in unix ms
SAMPLED = [m for m in METRICS if m != DURATION]


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _sums(buckets: list[dict[str, Any]], metric: str) -> float:
    return sum(b["sum"] for b in buckets if b["metric_name"] == metric)


async def _calls(engine: Engine, w: RawWorker, ok: int, fail: int) -> None:
    """Make the calls and wait until the module has counted them."""
    stats = otel_module(engine).stats
    expected = stats.total + ok + fail
    for _ in range(ok):
        await w.call("demo.ok", {})
    for _ in range(fail):
        await w.call_raw("demo.fail", {})
    await wait_until(lambda: stats.total == expected, 5, "the calls to be counted")


async def test_the_sampler_fills_buckets_from_real_invocations(engine_factory):
    config = otel_config(rollup_interval_ms=50)
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        module = otel_module(engine)
        rollups = module.rollups
        assert rollups is not None
        await register_demo_functions(engine, w)
        await _calls(engine, w, ok=5, fail=2)
        async with raw_worker(engine):  # one more spawn and, when it leaves, one death
            await wait_until(lambda: engine.workers.active_count() == 2)
        await wait_until(lambda: engine.workers.active_count() == 1)

        def listed() -> list[dict[str, Any]]:
            return rollups.list(parse_query({}, "test"))

        await wait_until(
            lambda: (
                _sums(listed(), "iii.workers.deaths") == 1
                and sum(b["count"] for b in listed() if b["metric_name"] == DURATION) == 7
            ),
            5,
            "a sample after the calls",
        )
        # Read in Python (not through a call, which would count as an invocation itself).
        buckets = listed()
        assert _sums(buckets, "iii.invocations.total") == 7
        assert _sums(buckets, "iii.invocations.success") == 5
        assert _sums(buckets, "iii.invocations.error") == 2
        assert _sums(buckets, "iii.invocations.deferred") == 0
        assert _sums(buckets, "iii.workers.spawns") == 2
        assert _sums(buckets, "iii.workers.deaths") == 1
        newest_active = [b for b in buckets if b["metric_name"] == "iii.workers.active"][-1]
        assert newest_active["last"] == 1 and newest_active["max"] >= 1
        for b in buckets:
            assert set(b) == {
                "metric_name",
                "level",
                "start_time",
                "end_time",
                "count",
                "sum",
                "min",
                "max",
                "avg",
                "last",
            }
            assert b["level"] == "1m" and b["start_time"] % 60_000 == 0
            assert b["end_time"] - b["start_time"] == 60_000
        # Every sampled metric got the same number of samples per bucket.
        counts = {(b["start_time"], b["count"]) for b in buckets if b["metric_name"] in SAMPLED}
        assert len(counts) == len({b["start_time"] for b in buckets}), counts
        assert all(count >= 1 for _, count in counts)
        durations = [b for b in buckets if b["metric_name"] == DURATION]
        assert sum(b["count"] for b in durations) == 7
        assert _sums(buckets, DURATION) > 0
        for b in durations:
            assert b["min"] is None and b["max"] is None and b["last"] is None
            if b["count"]:
                assert b["avg"] == pytest.approx(b["sum"] / b["count"], abs=0.01)
        assert module.gauges()["otel_rollup_buckets"] == len(rollups) > 0

        # The same through the function (the call itself is counted only when it finishes).
        result = await w.call("engine::rollups::list", {"metric_name": "iii.invocations.total"})
        assert result["level"] == "1m"
        assert result["query"] == {
            "start_time": None,
            "end_time": None,
            "level": "1m",
            "metric_name": "iii.invocations.total",
        }
        assert isinstance(result["timestamp"], int)
        assert {b["metric_name"] for b in result["rollups"]} == {"iii.invocations.total"}
        assert _sums(result["rollups"], "iii.invocations.total") >= 7
        starts = [b["start_time"] for b in result["rollups"]]
        assert starts == sorted(starts)


def _aggregate(buckets: list[dict[str, Any]]) -> tuple[Any, ...]:
    """count, sum (to 0.01), min, max, last of consecutive buckets (oldest first)."""
    mins = [b["min"] for b in buckets if b["min"] is not None]
    maxs = [b["max"] for b in buckets if b["max"] is not None]
    lasts = [b["last"] for b in buckets if b["last"] is not None]
    return (
        sum(b["count"] for b in buckets),
        pytest.approx(sum(b["sum"] for b in buckets), abs=0.01),
        min(mins) if mins else None,
        max(maxs) if maxs else None,
        lasts[-1] if lasts else None,
    )


async def _fake_clock_rollups(engine: Engine) -> tuple[Rollups, FakeClock]:
    """The module's rollups, sampled by hand on a fake clock (the sampler task sleeps 60 s)."""
    rollups = otel_module(engine).rollups
    assert rollups is not None and len(rollups) == 0
    clock = FakeClock()
    rollups.clock = clock
    return rollups, clock


async def test_levels_aggregate_the_same_samples_with_a_fake_clock(engine_factory):
    config = otel_config(rollup_interval_ms=60_000)
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        await register_demo_functions(engine, w)
        rollups, clock = await _fake_clock_rollups(engine)
        made = {"ok": 0, "fail": 0}
        # 26 samples 30 s apart: 13 minutes (1m buckets 0..13), three 5m buckets, one 1h bucket.
        for i in range(26):
            clock.now += 30_000
            ok, fail = i % 3, 1 if i % 5 == 0 else 0
            await _calls(engine, w, ok, fail)
            made["ok"] += ok
            made["fail"] += fail
            rollups.sample()

        def level(name: str, **query: Any) -> list[dict[str, Any]]:
            return rollups.list(parse_query({"level": name, **query}, "test"))

        minutes, fives, hours = level("1m"), level("5m"), level("1h")
        assert len({b["start_time"] for b in minutes}) == 14
        assert [b["start_time"] for b in fives if b["metric_name"] == METRICS[0]] == [
            T0,
            T0 + 300_000,
            T0 + 600_000,
        ]
        assert [b["start_time"] for b in hours if b["metric_name"] == METRICS[0]] == [T0]
        assert _sums(minutes, "iii.invocations.success") == made["ok"]
        assert _sums(minutes, "iii.invocations.error") == made["fail"]
        assert _sums(minutes, "iii.invocations.total") == made["ok"] + made["fail"]
        for metric in METRICS:
            mine = [b for b in minutes if b["metric_name"] == metric]
            for wide in [b for b in fives + hours if b["metric_name"] == metric]:
                inside = [
                    b
                    for b in mine
                    if wide["start_time"] <= b["start_time"] < wide["end_time"]  # type: ignore[operator]
                ]
                assert inside, wide
                assert _aggregate([wide]) == _aggregate(inside), (metric, wide)
        success = [b for b in minutes if b["metric_name"] == "iii.invocations.success"]
        # Samples i = 0, 1 land in minute 0 (30 s, 60 s → 0 and 1): 0 + 1 calls, etc.
        assert success[0]["count"] == 1 and success[0]["sum"] == 0
        assert (success[1]["count"], success[1]["sum"]) == (2, 1 + 2)
        assert (success[1]["min"], success[1]["max"], success[1]["last"]) == (1, 2, 2)
        active = [b for b in hours if b["metric_name"] == "iii.workers.active"]
        assert active[0]["count"] == 26 and active[0]["avg"] == 1 and active[0]["last"] == 1


async def test_filters_by_time_and_metric_name(engine_factory):
    config = otel_config(rollup_interval_ms=60_000)
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        rollups, clock = await _fake_clock_rollups(engine)
        for _ in range(5):  # one sample in each of minutes 0..4
            rollups.sample()
            clock.now += 60_000

        async def starts(**query: Any) -> list[int]:
            got = await w.call("engine::rollups::list", query)
            return [b["start_time"] for b in got["rollups"]]

        name = {"metric_name": "iii.workers.active"}
        minute = [T0 + i * 60_000 for i in range(5)]
        assert await starts(**name) == minute
        # A bucket [s, s + 60 s) is included when it overlaps [start_time, end_time].
        assert await starts(**name, start_time=minute[1]) == minute[1:]
        assert await starts(**name, start_time=minute[1] - 1) == minute[:]
        assert await starts(**name, start_time=minute[2] - 1, end_time=minute[3]) == minute[1:4]
        assert await starts(**name, end_time=minute[2] - 1) == minute[:2]
        assert await starts(**name, start_time=T0 + 10 * 60_000) == []
        everything = await w.call("engine::rollups::list", {"start_time": minute[4]})
        assert [b["metric_name"] for b in everything["rollups"]] == list(METRICS)
        assert (await w.call("engine::rollups::list", {"level": "5m", **name}))["rollups"][0][
            "count"
        ] == 5


async def test_rings_never_exceed_their_sizes_and_the_gauge(engine_factory):
    async with engine_factory(otel_config(rollup_interval_ms=60_000)) as engine:
        module = otel_module(engine)
        rollups, clock = await _fake_clock_rollups(engine)
        for i in range(400):  # 400 hours: more than every ring holds
            rollups.sample()
            for level, (_, size) in LEVELS.items():
                for ring in rollups.rings[level].values():
                    assert len(ring) == min(i + 1, size)
            clock.now += HOUR
        assert len(rollups) == MAX_BUCKETS == (60 + 288 + 168) * 8
        assert module.gauges()["otel_rollup_buckets"] == MAX_BUCKETS
        samples = await scrape(module.metrics_port)  # type: ignore[arg-type]
        assert samples[("iii_otel_rollup_buckets", ())] == MAX_BUCKETS
        # The oldest buckets were dropped first.
        hours = rollups.list(parse_query({"level": "1h", "metric_name": METRICS[0]}, "test"))
        assert [b["start_time"] for b in hours] == [T0 + i * HOUR for i in range(232, 400)]


BAD_INPUTS: list[tuple[Any, str]] = [
    ({"level": "2m"}, r"level must be one of 1m, 5m, 1h, got '2m'"),
    ({"level": 5}, r"level must be one of 1m, 5m, 1h, got 5"),
    ({"level": ["1m"]}, r"level must be one of 1m, 5m, 1h, got \['1m'\]"),
    ({"start_time": 1.5}, r"start_time must be an integer \(unix ms\), got 1\.5"),
    ({"end_time": "10"}, r"end_time must be an integer \(unix ms\), got '10'"),
    ({"start_time": True}, r"start_time must be an integer \(unix ms\), got True"),
    ({"start_time": -1}, r"start_time must be >= 0, got -1"),
    ({"start_time": 10, "end_time": 5}, r"start_time \(10\) is after end_time \(5\)"),
    ({"metric_name": 3}, r"metric_name must be one of iii\.invocations\.total, .* got 3"),
    ({"metric_name": "iii.invocations.errors"}, r"metric_name must be one of .*'iii\.inv"),
    ({"metric": "iii.workers.active"}, r"unknown key\(s\) metric \(allowed: start_time, "),
    ([1], r"expected an object, got list"),
]


async def test_bad_input_is_an_error_with_a_code(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        for data, message in BAD_INPUTS:
            reply = await w.call_raw("engine::rollups::list", data)
            error = reply["error"]
            assert error["code"] == "deserialization_error", (data, error)
            assert re.search(message, error["message"]), (data, error["message"])
            assert "engine::rollups::list" in error["message"]
        ok = await w.call("engine::rollups::list", None)
        assert ok["level"] == "1m" and ok["query"]["level"] == "1m"


async def test_rollups_can_be_turned_off(engine_factory):
    async with (
        engine_factory(otel_config(rollups_enabled=False, rollup_interval_ms=10)) as engine,
        raw_worker(engine) as w,
    ):
        module = otel_module(engine)
        assert module.rollups is None
        await asyncio.sleep(0.05)
        reply = await w.call_raw("engine::rollups::list", {})
        assert reply["error"]["code"] == "rollups_not_enabled"
        assert "rollups_enabled" in reply["error"]["message"]
        assert module.gauges()["otel_rollup_buckets"] == 0


def test_rollup_config_defaults_and_validation():
    settings = resolve(OtelConfig(), "test")
    assert (settings.rollups_enabled, settings.rollup_interval_ms) == (True, 10_000)
    with pytest.raises(ConfigError, match=r"rollup_interval_ms must be positive, got 0"):
        resolve(OtelConfig(rollup_interval_ms=0), "test")
