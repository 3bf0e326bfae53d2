"""Helpers shared by the iii-otel tests."""

from __future__ import annotations

from typing import Any

import aiohttp
from iii_otel import OtelModule
from prometheus_client.parser import text_string_to_metric_families

from iii_core import Engine
from iii_core.testing import RawWorker, wait_until

OTEL = "modules::observability::OtelModule"


def otel_config(**config: Any) -> dict[str, Any]:
    """An engine config loading only the OtelModule (Prometheus on an ephemeral port)."""
    config.setdefault("prometheus_port", 0)
    return {"modules": [{"class": OTEL, "config": config}]}


def otel_module(engine: Engine) -> OtelModule:
    return next(m for m in engine.modules if isinstance(m, OtelModule))


async def register_demo_functions(engine: Engine, w: RawWorker) -> None:
    """``demo.ok`` (echoes its input) and ``demo.fail`` (fails with ``invocation_failed``),
    served by the raw worker ``w``; returns once the engine knows both."""

    async def ok(data: Any) -> Any:
        return data

    async def fail(data: Any) -> Any:
        raise ValueError("no")

    await w.register_function("demo.ok", ok)
    await w.register_function("demo.fail", fail)
    await wait_until(lambda: engine.functions.get("demo.fail") is not None)


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics over real HTTP; samples keyed by (name, sorted labels)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
