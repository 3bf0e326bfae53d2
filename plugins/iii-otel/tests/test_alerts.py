"""The ``alerts`` config: validation, firing and resolving, cooldown, the three actions."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from iii_otel.config import OtelConfig, resolve
from otel_helpers import otel_config, otel_module, scrape

from iii_core import ConfigError
from iii_core.testing import free_port, local_http_server, raw_worker, wait_until


def _alert(**fields: Any) -> dict[str, Any]:
    return {"name": "a", "metric": "iii.invocations.error", "threshold": 1, **fields}


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"name": "a"}, r"alerts must be a list"),
        (["x"], r"alerts\[0\] must be a mapping, got 'x'"),
        ([{"metric": "iii.invocations.error", "threshold": 1}], r"alerts\[0\]\.name .* None"),
        ([_alert(), _alert()], r"alerts\[1\]\.name 'a' is used by another alert"),
        ([_alert(colour=1)], r"alerts\[0\]: unknown key\(s\) colour"),
        ([_alert(metric=None)], r"alerts\[0\] \(a\)\.metric must be a non-empty string"),
        ([_alert(metric="iii.invocations.errors")], r"metric 'iii.invocations.errors' is not an"),
        ([_alert(threshold="1")], r"alerts\[0\] \(a\)\.threshold must be a number, got '1'"),
        ([_alert(threshold=None)], r"\.threshold must be a number, got None"),
        ([_alert(operator="=>")], r"\.operator must be one of > >= < <= == !=, got '=>'"),
        ([_alert(window_seconds=0)], r"\.window_seconds must be a number > 0, got 0"),
        ([_alert(cooldown_seconds=-1)], r"\.cooldown_seconds must be a number >= 0, got -1"),
        ([_alert(enabled="no")], r"\.enabled must be true or false, got 'no'"),
        ([_alert(action="log")], r"\.action must be a mapping with a type"),
        ([_alert(action={"type": "email"})], r"\.action\.type must be one of .* got 'email'"),
        ([_alert(action={"type": "webhook"})], r"\.action\.url is required for type webhook"),
        ([_alert(action={"type": "webhook", "url": "x.io"})], r"\.action\.url must be an http"),
        ([_alert(action={"type": "function"})], r"\.action\.path is required for type function"),
        ([_alert(action={"type": "log", "url": "http://x"})], r"\.action: unknown key\(s\) url"),
    ],
)
def test_bad_alert_values_name_the_key(alerts, message):
    with pytest.raises(ConfigError, match=message):
        resolve(OtelConfig(alerts=alerts), "test")


def test_store_metrics_need_the_metric_store_and_the_interval_must_be_positive():
    rule = _alert(metric="iii.worker.memory.rss")
    assert resolve(OtelConfig(alerts=[rule]), "test").alerts[0].kind == "store"
    with pytest.raises(ConfigError, match=r"metric store is off"):
        resolve(OtelConfig(alerts=[rule], metrics_enabled=False), "test")
    with pytest.raises(ConfigError, match=r"alerts_interval_ms must be positive, got 0"):
        resolve(OtelConfig(alerts_interval_ms=0), "test")
    defaults = resolve(OtelConfig(alerts=[_alert()]), "test").alerts[0]
    assert (defaults.operator, defaults.window_seconds, defaults.cooldown_seconds) == (">", 60, 60)
    assert (defaults.action, defaults.enabled) == ("log", True)


async def test_an_alert_fires_on_errors_and_resolves_when_the_window_passes(engine_factory, caplog):
    alert = _alert(name="errors", threshold=2, window_seconds=0.6)
    config = otel_config(alerts=[alert], alerts_interval_ms=100)
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        module = otel_module(engine)
        assert module.alerts is not None

        async def fail(data: Any) -> Any:
            raise ValueError("boom")

        await w.register_function("demo.fail", fail)
        await wait_until(lambda: engine.functions.get("demo.fail") is not None)
        with caplog.at_level(logging.INFO, logger="iii.otel"):
            for _ in range(2):
                await w.call_raw("demo.fail", {})
            await asyncio.sleep(0.25)  # two errors: not above the threshold
            assert module.alerts.list()[0]["state"] == "ok"
            await w.call_raw("demo.fail", {})
            await wait_until(lambda: module.alerts.list()[0]["state"] == "firing", 3, "firing")
            assert module.gauges()["otel_alerts_firing"] == 1
            samples = await scrape(module.metrics_port)  # type: ignore[arg-type]
            assert samples[("iii_otel_alerts_firing", ())] == 1
            listed = (await w.call("engine::alerts::list", {}))["alerts"]
            (state,) = listed
            assert state["name"] == "errors" and state["metric"] == "iii.invocations.error"
            assert state["value"] == 3 and state["threshold"] == 2 and state["operator"] == ">"
            assert state["fire_count"] == 1 and state["enabled"] is True
            assert abs(state["last_fired_at"] - time.time() * 1000) < 5000
            # No more errors: the increase over the window drops to zero and the alert resolves.
            await wait_until(lambda: module.alerts.list()[0]["state"] == "ok", 3, "resolved")
        assert module.alerts.list()[0]["fire_count"] == 1
        assert module.gauges()["otel_alerts_firing"] == 0
        assert module.gauges()["otel_alerts_fired_total"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "alert errors firing" in m and "iii.invocations.error = 3" in m and "> 2" in m
        for m in warnings
    ), warnings
    assert any("alert errors resolved" in r.getMessage() for r in caplog.records)


async def test_evaluate_and_list_functions(engine_factory):
    alerts = [
        {"name": "busy", "metric": "iii.invocations.success", "threshold": 1},
        {"name": "off", "metric": "iii.workers.active", "threshold": 0, "enabled": False},
    ]
    config = otel_config(alerts=alerts, alerts_interval_ms=60_000)  # only manual evaluation
    async with engine_factory(config) as engine, raw_worker(engine) as w:

        async def ok(data: Any) -> Any:
            return 1

        await w.register_function("demo.ok", ok)
        await wait_until(lambda: engine.functions.get("demo.ok") is not None)
        first = (await w.call("engine::alerts::evaluate", {}))["alerts"]
        assert [(a["name"], a["state"], a["value"]) for a in first] == [
            ("busy", "ok", 0),
            ("off", "ok", None),
        ]
        await w.call("demo.ok", {})
        await w.call("demo.ok", {})
        second = (await w.call("engine::alerts::evaluate", {}))["alerts"]
        # Three successes in the window: the first evaluate call and two demo.ok calls.
        assert (second[0]["state"], second[0]["value"], second[0]["fire_count"]) == (
            "firing",
            3,
            1,
        )
        assert second[1]["state"] == "ok" and second[1]["fire_count"] == 0  # disabled
        assert (await w.call("engine::alerts::list", {}))["alerts"] == second
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        assert await w.call("engine::alerts::list", {}) == {"alerts": []}


async def test_cooldown_limits_repeated_firing_and_the_function_action(engine_factory):
    alert = {
        "name": "always",
        "metric": "iii.workers.active",
        "operator": ">=",
        "threshold": 0,
        "cooldown_seconds": 0.3,
        "action": {"type": "function", "path": "test.on_alert"},
    }
    config = otel_config(alerts=[alert], alerts_interval_ms=50)
    async with engine_factory(config) as engine:
        module = otel_module(engine)
        got: list[dict[str, Any]] = []

        async def on_alert(data: Any, ctx: Any) -> None:
            got.append(data)

        engine.register_function("test.on_alert", on_alert)
        started = time.monotonic()
        await wait_until(lambda: len(got) >= 3, 5, "three firings")
        elapsed = time.monotonic() - started
        assert module.alerts is not None
        count = module.alerts.list()[0]["fire_count"]
        # Evaluated about every 50 ms, fired at most once per 0.3 s cooldown.
        assert count <= 2 + elapsed / 0.3, (count, elapsed)
        stamps = [g["timestamp"] for g in got]
        assert all(b - a >= 290 for a, b in itertools.pairwise(stamps)), stamps
        assert got[0] == {
            "alert": "always",
            "metric": "iii.workers.active",
            "value": 0.0,
            "threshold": 0.0,
            "operator": ">=",
            "state": "firing",
            "timestamp": got[0]["timestamp"],
        }


@asynccontextmanager
async def _webhook_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    async with local_http_server(app) as base:
        yield f"{base}/hook", received


async def test_webhook_action_posts_json(engine_factory):
    async with _webhook_server() as (url, received):
        alert = {
            "name": "traffic",
            "metric": "iii.invocations.total",
            "threshold": 0,
            "window_seconds": 0.5,
            "action": {"type": "webhook", "url": url},
        }
        config = otel_config(alerts=[alert], alerts_interval_ms=100)
        async with engine_factory(config) as engine, raw_worker(engine) as w:
            await w.call("engine::health::check", {})
            await wait_until(lambda: len(received) >= 1, 5, "the firing webhook")
            await wait_until(lambda: len(received) >= 2, 5, "the resolved webhook")
    firing, resolved = received[:2]
    assert firing["alert"] == "traffic" and firing["metric"] == "iii.invocations.total"
    assert firing["state"] == "firing" and firing["value"] >= 1
    assert (firing["threshold"], firing["operator"]) == (0, ">")
    assert isinstance(firing["timestamp"], int)
    assert resolved["state"] == "resolved" and resolved["value"] == 0


async def test_a_failing_webhook_does_not_stop_evaluation(engine_factory, caplog):
    always = {"metric": "iii.workers.active", "operator": ">=", "threshold": 0}
    alerts = [
        {
            **always,
            "name": "dead",
            "cooldown_seconds": 0.1,
            "action": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/x"},
        },
        {
            **always,
            "name": "alive",
            "cooldown_seconds": 0.1,
            "action": {"type": "function", "path": "test.on_alert"},
        },
    ]
    async with engine_factory(otel_config(alerts=alerts, alerts_interval_ms=50)) as engine:
        module = otel_module(engine)
        assert module.alerts is not None
        got: list[Any] = []

        async def on_alert(data: Any, ctx: Any) -> None:
            got.append(data)

        engine.register_function("test.on_alert", on_alert)
        with caplog.at_level(logging.WARNING, logger="iii.otel"):
            await wait_until(
                lambda: module.alerts.list()[0]["fire_count"] >= 3 and len(got) >= 3,  # type: ignore[union-attr]
                5,
                "repeated firings despite the dead webhook",
            )
            await wait_until(lambda: "webhook" in caplog.text, 5, "the failure warning")
    assert "alert dead: webhook http://127.0.0.1:" in caplog.text and "failed" in caplog.text
