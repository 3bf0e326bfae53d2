"""Prometheus /metrics over real HTTP, parsed with prometheus_client.parser."""

from __future__ import annotations

from typing import Any

from otel_helpers import otel_config, otel_module, register_demo_functions, scrape

from iii_core.testing import raw_worker, wait_until


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_follow_a_known_workload(engine_factory):
    async with engine_factory(otel_config()) as engine:
        port = otel_module(engine).metrics_port
        assert port
        before = await scrape(port)
        assert _value(before, "iii_workers_active") == 0
        async with raw_worker(engine) as w:
            await register_demo_functions(engine, w)
            for i in range(5):
                assert await w.call("demo.ok", {"i": i}) == {
                    "i": i,
                    "_caller_worker_id": w.worker_id,
                }
            for _ in range(2):
                msg = await w.call_raw("demo.fail", {})
                assert msg["error"]["code"] == "invocation_failed"
            await w.send("{not json")
            await wait_until(lambda: engine.protocol_errors_total == 1)
            after = await scrape(port)
            assert _value(after, "iii_workers_active") == 1
        gone = await scrape(port)

    assert (
        _value(after, "iii_workers_spawns_total") == _value(before, "iii_workers_spawns_total") + 1
    )
    assert (
        _value(after, "iii_functions_registered_total")
        == _value(before, "iii_functions_registered_total") + 2
    )
    assert _value(after, "iii_invocations_total", function_id="demo.ok", status="ok") == 5
    assert _value(after, "iii_invocations_total", function_id="demo.fail", status="error") == 2
    assert (
        _value(
            after,
            "iii_invocation_errors_total",
            function_id="demo.fail",
            error_code="invocation_failed",
        )
        == 2
    )
    count = _value(
        after, "iii_invocation_duration_seconds_count", function_id="demo.ok", status="ok"
    )
    inf = _value(
        after,
        "iii_invocation_duration_seconds_bucket",
        function_id="demo.ok",
        status="ok",
        le="+Inf",
    )
    assert count == inf == 5
    assert (
        _value(after, "iii_invocation_duration_seconds_sum", function_id="demo.ok", status="ok") > 0
    )
    assert _value(after, "iii_protocol_errors_total") == 1
    assert _value(after, "iii_engine_functions") >= 2
    assert ("iii_otel_spans", ()) in after
    assert _value(gone, "iii_workers_active") == 0
    assert _value(gone, "iii_workers_deaths_total") == 1


async def test_prometheus_binds_the_configured_host(engine_factory):
    async with engine_factory(otel_config(prometheus_host="127.0.0.1")) as engine:
        module = otel_module(engine)
        samples = await scrape(module.metrics_port)
        assert ("iii_workers_active", ()) in samples
    # Stopped with the engine.
    import aiohttp
    import pytest

    with pytest.raises(aiohttp.ClientError):
        await scrape(module.metrics_port)


async def test_prometheus_can_be_disabled(engine_factory):
    async with engine_factory(otel_config(prometheus_enabled=False)) as engine:
        assert otel_module(engine).metrics_port is None


async def test_every_modules_gauges_are_exported(engine_factory):
    from iii_core import Module

    class Demo(Module):
        def gauges(self) -> dict[str, int]:
            # otel_spans is the otel module's: the first module to name a metric wins.
            return {"demo_items": 3, "demo_done_total": 7, "otel_spans": 99, "Bad-Name": 1}

    class Broken(Module):
        def gauges(self) -> dict[str, int]:
            raise RuntimeError("bug")

    async with engine_factory(otel_config()) as engine:
        engine.modules.extend([Broken(engine, None), Demo(engine, None)])
        try:
            samples = await scrape(otel_module(engine).metrics_port)
        finally:
            del engine.modules[-2:]
    assert _value(samples, "iii_demo_items") == 3
    assert _value(samples, "iii_demo_done_total") == 7
    assert _value(samples, "iii_otel_spans") != 99
    assert ("iii_otel_export_dropped_total", ()) in samples
    assert not any("bad" in name.lower() for name, _ in samples)
