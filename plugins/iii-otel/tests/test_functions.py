"""engine::traces/logs/log/metrics/health/baggage functions, traceparent replacement, bounds."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from otel_helpers import otel_config, otel_module, scrape

from iii_core.testing import raw_worker, wait_until

CALLER_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def _serve_manually(w: Any, function_id: str) -> None:
    """Register ``function_id`` without a handler so its invocations land in ``w.inbox``."""
    await w.send({"type": "registerfunction", "id": function_id})


async def test_engine_span_becomes_the_parent_of_the_worker(engine_factory):
    async with (
        engine_factory(otel_config()) as engine,
        raw_worker(engine) as callee,
        raw_worker(engine) as caller,
    ):
        await _serve_manually(callee, "demo.work")
        await wait_until(lambda: engine.functions.get("demo.work") is not None)
        call = asyncio.create_task(
            caller.call_raw("demo.work", {}, traceparent=CALLER_TP, baggage="user=ada")
        )
        msg = await asyncio.wait_for(callee.inbox.get(), 10)
        assert msg["type"] == "invokefunction"
        tp = msg["traceparent"]
        assert tp.startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert int(tp[53:55], 16) & 0x01 == 1  # sampled, as the caller said
        engine_span_id = tp[36:52]
        assert engine_span_id != "b7ad6b7169203331"
        assert msg["baggage"] == "user=ada"
        await callee.send(
            {
                "type": "invocationresult",
                "invocation_id": msg["invocation_id"],
                "function_id": "demo.work",
                "error": {"code": "bad_thing", "message": "it broke"},
            }
        )
        reply = await call
        assert reply["error"]["code"] == "bad_thing"
        listed = await caller.call(
            "engine::traces::list", {"trace_id": "0AF7651916CD43DD8448EB211C80319C"}
        )
    (span,) = listed["spans"]
    assert span["span_id"] == engine_span_id
    assert span["parent_span_id"] == "b7ad6b7169203331"
    assert span["name"] == "call demo.work"
    assert span["status"] == "error" and span["status_description"] == "it broke"
    assert span["attributes"]["iii.error.code"] == "bad_thing"
    assert span["attributes"]["iii.function.kind"] == "user"


async def test_traces_list_filters_sorts_and_clears(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:

        async def echo(data: Any) -> Any:
            await asyncio.sleep(data["sleep"])
            return None

        await w.register_function("demo.fast", echo)
        await w.register_function("demo.slow", echo)
        await wait_until(lambda: engine.functions.get("demo.slow") is not None)
        for _ in range(3):
            await w.call("demo.fast", {"sleep": 0})
        await w.call("demo.slow", {"sleep": 0.05})
        everything = await w.call("engine::traces::list", {})
        assert everything["total"] == 4  # engine::* calls are not traced by default
        page = await w.call("engine::traces::list", {"limit": 2, "offset": 1, "sort_order": "asc"})
        assert len(page["spans"]) == 2 and page["total"] == 4 and page["offset"] == 1
        slow = await w.call("engine::traces::list", {"min_duration_ms": 40})
        assert [s["name"] for s in slow["spans"]] == ["call demo.slow"]
        by_attr = await w.call(
            "engine::traces::list", {"attributes": [["faas.invoked_name", "demo.fast"]]}
        )
        assert by_attr["total"] == 3
        top = await w.call("engine::traces::list", {"sort_by": "duration", "limit": 1})
        assert top["spans"][0]["name"] == "call demo.slow"
        bad = await w.call_raw("engine::traces::list", {"sort_by": "colour"})
        assert bad["error"]["code"] == "deserialization_error"
        bad = await w.call_raw("engine::traces::tree", {})
        assert bad["error"]["code"] == "deserialization_error"
        await w.call("engine::traces::clear", {})
        assert (await w.call("engine::traces::list", {}))["total"] == 0


async def test_span_store_off_gives_a_clear_error(engine_factory):
    async with engine_factory(otel_config(exporter="otlp")) as engine, raw_worker(engine) as w:
        msg = await w.call_raw("engine::traces::list", {})
        assert msg["error"]["code"] == "memory_exporter_not_enabled"


async def test_log_functions_store_echo_and_fire_triggers(engine_factory, caplog):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        got: list[Any] = []

        async def on_warn(data: Any) -> None:
            got.append(data)

        await w.register_function("test.on_warn", on_warn)
        await w.register_trigger("log", "test.on_warn", {"level": "warn"})
        await wait_until(lambda: any(t.active for t in engine.triggers))
        with caplog.at_level(logging.INFO, logger="iii.log"):
            for level in ("info", "warn", "error", "debug", "trace"):
                assert (
                    await w.call(
                        f"engine::log::{level}",
                        {"message": f"m-{level}", "data": {"n": 1}},
                        traceparent=CALLER_TP,
                    )
                    is None
                )
        assert "m-warn" in caplog.text
        await wait_until(lambda: len(got) == 1, 10, "the warn trigger")
        assert got[0]["body"] == "m-warn" and got[0]["severity_number"] == 13
        assert got[0]["attributes"] == {"n": 1}
        assert got[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        listed = await w.call("engine::logs::list", {"severity_min": 13})
        assert [r["body"] for r in listed["logs"]] == ["m-error", "m-warn"]
        numbers = await w.call("engine::logs::list", {"trace_id": CALLER_TP[3:35]})
        assert sorted(r["severity_number"] for r in numbers["logs"]) == [1, 5, 9, 13, 17]
        bad = await w.call_raw("engine::log::info", {"data": 1})
        assert bad["error"]["code"] == "deserialization_error"
        await w.call("engine::logs::clear", {})
        assert (await w.call("engine::logs::list", {}))["total"] == 0


async def test_engine_log_lines_are_stored_and_fire_log_triggers(engine_factory):
    iii_logger = logging.getLogger("iii")
    old = iii_logger.level
    iii_logger.setLevel(logging.INFO)
    try:
        async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
            got: list[Any] = []

            async def on_info(data: Any) -> None:
                got.append(data["body"])

            await w.register_function("test.on_info", on_info)
            await w.register_trigger("log", "test.on_info", {"level": "info"})
            await wait_until(lambda: any(t.active for t in engine.triggers))
            await w.register_function("users.create", on_info)
            await wait_until(
                lambda: "[REGISTERED] Function users.create" in got, 10, "the engine log line"
            )
            logs = await w.call("engine::logs::list", {})
            lines = [r["body"] for r in logs["logs"]]
            assert "[REGISTERED] Function users.create" in lines
            assert any(line.startswith(f"Worker {w.worker_id} connected") for line in lines)
            record = next(r for r in logs["logs"] if r["body"].endswith("users.create"))
            assert record["attributes"]["logger"] == "iii.engine"
    finally:
        iii_logger.setLevel(old)


async def test_bad_log_trigger_configs_are_rejected(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        await w.register_function("test.x", lambda d: d)
        for config in ({"level": "loud"}, {"lvl": "info"}, "info"):
            await w.register_trigger("log", "test.x", config)
            msg = await asyncio.wait_for(w.inbox.get(), 10)
            assert msg["type"] == "triggerregistrationresult", msg
            assert msg["error"]["code"] == "trigger_registration_failed"
        assert len(engine.triggers) == 0


async def test_metrics_health_and_baggage(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        health = await w.call("engine::health::check", {})
        assert health["status"] == "healthy"
        assert set(health["components"]) == {"otel", "metrics", "logs", "spans"}
        assert health["components"]["spans"]["status"] == "healthy"
        metrics = await w.call("engine::metrics::list", {})
        assert metrics["engine_metrics"]["invocations"]["total"] >= 1
        assert "p99_duration_ms" in metrics["engine_metrics"]["performance"]
        bag = "user=ada,tenant=t%201;prop=x"
        assert await w.call("engine::baggage::get_all", {}, baggage=bag) == {
            "baggage": {"user": "ada", "tenant": "t 1"}
        }
        assert await w.call("engine::baggage::get", {"key": "tenant"}, baggage=bag) == {
            "key": "tenant",
            "value": "t 1",
        }
        out = await w.call("engine::baggage::set", {"key": "plan", "value": "pro"}, baggage=bag)
        assert out["baggage"] == {"user": "ada", "tenant": "t 1", "plan": "pro"}
        assert out["header"] == "user=ada,tenant=t%201,plan=pro"


async def test_stores_stay_bounded_under_a_flood(engine_factory):
    config = otel_config(
        memory_max_spans=50, logs_max_count=20, metrics_max_count=30, metrics_max_series=5
    )
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        module = otel_module(engine)

        async def echo(data: Any) -> Any:
            return None

        for i in range(10):
            await w.register_function(f"demo.f{i}", echo)
        await wait_until(lambda: engine.functions.get("demo.f9") is not None)
        await asyncio.gather(*(w.call(f"demo.f{i % 10}", {}) for i in range(500)))
        await asyncio.gather(
            *(w.call("engine::log::info", {"message": f"{i}"}) for i in range(200))
        )
        point = {"asInt": "1", "attributes": [], "timeUnixNano": "1"}
        metrics = {"name": "x", "gauge": {"dataPoints": [point] * 100}}
        doc = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metrics]}]}]}
        await w.send(b"MTRC" + json.dumps(doc).encode())
        await wait_until(lambda: module.observer.frames_total["MTRC"] == 1)  # type: ignore[union-attr]
        assert len(module.spans) == 50  # type: ignore[arg-type]
        assert module.spans.dropped_total >= 450  # type: ignore[union-attr]
        assert len(module.logs.store) == 20  # type: ignore[union-attr]
        assert len(module.metrics) == 30  # type: ignore[arg-type]
        assert len(module.stats.series) <= 5 + 2  # plus the two "_other" overflow series
        samples = await scrape(module.metrics_port)  # type: ignore[arg-type]
        assert samples[("iii_otel_spans", ())] == 50
        assert samples[("iii_otel_logs", ())] == 20
        total = sum(v for (name, labels), v in samples.items() if name == "iii_invocations_total")
        assert total >= 700  # every call is still counted, overflow under "_other"
        assert any(dict(labels).get("function_id") == "_other" for (_, labels) in samples)


async def test_sampled_out_calls_keep_working_without_spans(engine_factory):
    async with (
        engine_factory(otel_config(sampling_ratio=0.0)) as engine,
        raw_worker(engine) as callee,
        raw_worker(engine) as caller,
    ):
        await _serve_manually(callee, "demo.work")
        await wait_until(lambda: engine.functions.get("demo.work") is not None)
        call = asyncio.create_task(caller.call_raw("demo.work", {}))
        msg = await asyncio.wait_for(callee.inbox.get(), 10)
        # The "not sampled" decision travels to the worker in the flags.
        assert int(msg["traceparent"][53:55], 16) & 0x01 == 0, msg["traceparent"]
        await callee.send(
            {"type": "invocationresult", "invocation_id": msg["invocation_id"],
             "function_id": "demo.work", "result": 1}
        )  # fmt: skip
        assert (await call)["result"] == 1
        assert (await caller.call("engine::traces::list", {}))["total"] == 0
