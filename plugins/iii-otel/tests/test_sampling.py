"""The ``sampling`` config: validation, rules, parent-based decisions, the rate limit."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from iii_otel.config import OtelConfig, resolve
from iii_otel.sampling import RuleSampler, SamplingRule, SamplingSettings
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision
from otel_helpers import otel_config, otel_module

from iii_core import ConfigError
from iii_core.testing import RawWorker, raw_worker, wait_until

SAMPLED_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_TP = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


async def _echo(data: Any) -> Any:
    return None


async def _serve(engine: Any, w: RawWorker, *function_ids: str) -> None:
    for fid in function_ids:
        await w.register_function(fid, _echo)
    await wait_until(lambda: all(engine.functions.get(f) is not None for f in function_ids))


async def _span_names(w: RawWorker) -> list[str]:
    listed = await w.call("engine::traces::list", {"limit": 1000})
    return sorted(s["name"] for s in listed["spans"])


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ("all", r"sampling must be a mapping, got 'all'"),
        ({"colour": 1}, r"sampling: unknown key\(s\) colour"),
        ({"default": 1.5}, r"sampling\.default must be a number within 0\.\.1, got 1\.5"),
        ({"default": True}, r"sampling\.default .* got True"),
        ({"parent_based": "yes"}, r"sampling\.parent_based must be true or false, got 'yes'"),
        ({"rules": {"rate": 1}}, r"sampling\.rules must be a list"),
        ({"rules": [{"operation": "x"}]}, r"sampling\.rules\[0\]\.rate is required"),
        ({"rules": [{"rate": -0.1}]}, r"sampling\.rules\[0\]\.rate .* got -0\.1"),
        ({"rules": [{"rate": 1}, {"rate": 1, "op": "x"}]}, r"sampling\.rules\[1\]: unknown key"),
        ({"rules": [{"rate": 1, "service": 3}]}, r"sampling\.rules\[0\]\.service .* got 3"),
        ({"rate_limit": {}}, r"sampling\.rate_limit\.max_traces_per_second .* got None"),
        ({"rate_limit": {"max_traces_per_second": 0}}, r"max_traces_per_second .* > 0, got 0"),
        ({"rate_limit": {"max": 5}}, r"sampling\.rate_limit: unknown key\(s\) max"),
    ],
)
def test_bad_sampling_values_name_the_key(sampling, message):
    with pytest.raises(ConfigError, match=message):
        resolve(OtelConfig(sampling=sampling), "test")


async def test_a_bad_sampling_key_fails_engine_start_up(engine_factory):
    with pytest.raises(ConfigError, match=r"sampling\.rules\[0\]\.rate"):
        async with engine_factory(otel_config(sampling={"rules": [{"rate": 2}]})):
            pass


async def test_sampling_rules_function_returns_the_effective_configuration(engine_factory):
    async with engine_factory(otel_config(sampling_ratio=0.25)) as engine, raw_worker(engine) as w:
        assert await w.call("engine::sampling::rules", {}) == {
            "default": 0.25,
            "parent_based": True,
            "rules": [],
            "rate_limit": None,
        }
    sampling = {
        "parent_based": False,
        "rules": [{"operation": "call noisy.*", "rate": 0}, {"service": "ii?", "rate": 0.5}],
        "rate_limit": {"max_traces_per_second": 100},
    }
    config = otel_config(sampling_ratio=0.25, sampling=sampling)
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        assert await w.call("engine::sampling::rules", {}) == {
            "default": 0.25,  # falls back to sampling_ratio
            "parent_based": False,
            "rules": [
                {"operation": "call noisy.*", "service": None, "rate": 0.0},
                {"operation": None, "service": "ii?", "rate": 0.5},
            ],
            "rate_limit": {"max_traces_per_second": 100.0},
        }
        assert otel_module(engine).sampler is not None


async def test_a_rate_zero_rule_drops_matching_spans_and_keeps_the_others(engine_factory):
    sampling = {
        "default": 1.0,
        "rules": [{"operation": "call noisy.*", "rate": 0}, {"operation": "sdk.noisy*", "rate": 0}],
    }
    async with engine_factory(otel_config(sampling=sampling)) as engine, raw_worker(engine) as w:
        await _serve(engine, w, "noisy.ping", "noisy.pong", "quiet.work")
        for _ in range(3):
            for fid in ("noisy.ping", "noisy.pong", "quiet.work"):
                await w.call(fid, {})
        assert await _span_names(w) == ["call quiet.work"] * 3
        # Other modules' spans go through the SDK provider, sampled by the same rules.
        tracer = trace.get_tracer("iii.test")
        with tracer.start_as_current_span("sdk.noisy.tick") as noisy:
            assert not noisy.is_recording()
        with tracer.start_as_current_span("sdk.useful") as useful:
            assert useful.is_recording() and useful.get_span_context().trace_flags.sampled


async def test_service_rules_match_the_engine_service_name(engine_factory):
    sampling = {
        "rules": [
            {"service": "users", "rate": 0},  # another service: never matches engine spans
            {"operation": "call keep.*", "service": "bill*", "rate": 1},
            {"service": "bill?ng", "rate": 0},
        ]
    }
    config = otel_config(service_name="billing", sampling=sampling)
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        await _serve(engine, w, "keep.invoice", "drop.invoice")
        for _ in range(2):
            await w.call("keep.invoice", {})
            await w.call("drop.invoice", {})
        assert await _span_names(w) == ["call keep.invoice"] * 2


async def test_a_child_follows_its_parent_when_parent_based(engine_factory):
    sampling = {"default": 1.0, "rules": [{"operation": "call noisy.*", "rate": 0}]}
    async with engine_factory(otel_config(sampling=sampling)) as engine, raw_worker(engine) as w:
        await _serve(engine, w, "noisy.ping", "quiet.work")
        await w.call("noisy.ping", {}, traceparent=SAMPLED_TP)  # parent sampled: kept
        await w.call("noisy.ping", {})  # root: the rule drops it
        await w.call("quiet.work", {}, traceparent=UNSAMPLED_TP)  # parent not sampled: dropped
        listed = await w.call("engine::traces::list", {})
        (span,) = listed["spans"]
        assert span["name"] == "call noisy.ping"
        assert span["trace_id"] == SAMPLED_TP[3:35] and span["parent_span_id"] == SAMPLED_TP[36:52]


async def test_without_parent_based_the_rules_decide_for_children_too(engine_factory):
    sampling = {"parent_based": False, "rules": [{"operation": "call noisy.*", "rate": 0}]}
    async with (
        engine_factory(otel_config(sampling=sampling)) as engine,
        raw_worker(engine) as callee,
        raw_worker(engine) as caller,
    ):
        await callee.send({"type": "registerfunction", "id": "noisy.ping"})
        await _serve(engine, caller, "quiet.work")
        call = asyncio.create_task(caller.call_raw("noisy.ping", {}, traceparent=SAMPLED_TP))
        msg = await asyncio.wait_for(callee.inbox.get(), 10)
        assert msg["traceparent"].endswith("-00"), msg["traceparent"]  # the worker drops too
        await callee.send(
            {"type": "invocationresult", "invocation_id": msg["invocation_id"],
             "function_id": "noisy.ping", "result": 1}
        )  # fmt: skip
        assert (await call)["result"] == 1
        await caller.call("quiet.work", {}, traceparent=UNSAMPLED_TP)  # the rules sample it
        assert await _span_names(caller) == ["call quiet.work"]


def test_rate_limit_caps_sampled_roots_per_second_with_a_controlled_clock():
    now = [100.0]
    settings = SamplingSettings(default=1.0, max_traces_per_second=2)
    sampler = RuleSampler(settings, "iii", clock=lambda: now[0])

    def roots(n: int) -> int:
        return sum(sampler.decide(i + 1, "call x", "iii", None) for i in range(n))

    assert roots(10) == 2  # the bucket starts full: one second's worth
    now[0] += 0.5
    assert roots(10) == 1
    now[0] += 10  # a long pause refills only up to the capacity
    assert roots(10) == 2
    # Children of sampled parents are not roots: never limited.
    assert all(sampler.decide(7, "call x", "iii", True) for _ in range(10))
    assert sampler.rate_limited_total == 8 + 9 + 8
    # Through the OTel Sampler interface, too.
    now[0] += 1
    results = [sampler.should_sample(None, i + 1, "op").decision for i in range(5)]
    assert results.count(Decision.RECORD_AND_SAMPLE) == 2


def test_ratio_decisions_are_consistent_per_trace_id():
    rule = SamplingRule(rate=0.5, operation="call half.*")
    sampler = RuleSampler(SamplingSettings(default=1.0, rules=(rule,)), "iii")
    low, high = 1 << 62, (1 << 63) + 1  # low 64 bits below / above 0.5 * 2**64
    for name in ("call half.a", "call half.b"):
        assert sampler.decide(low, name, "iii", None)
        assert not sampler.decide(high, name, "iii", None)
    assert sampler.decide(high, "call other", "iii", None)  # default 1.0


async def test_rate_limit_caps_engine_spans(engine_factory):
    sampling = {"rate_limit": {"max_traces_per_second": 2}}
    async with engine_factory(otel_config(sampling=sampling)) as engine, raw_worker(engine) as w:
        await _serve(engine, w, "demo.work")
        started = time.monotonic()
        for _ in range(20):
            await w.call("demo.work", {})
        elapsed = time.monotonic() - started
        names = await _span_names(w)
        assert 2 <= len(names) <= 2 + math.ceil(elapsed * 2), (len(names), elapsed)
        assert otel_module(engine).sampler.rate_limited_total >= 20 - len(names)  # type: ignore[union-attr]
