"""Config keys, environment fallbacks, class-string aliases and the default configuration."""

from __future__ import annotations

import pytest
from iii_otel.config import OtelConfig, resolve
from otel_helpers import OTEL, otel_config, otel_module, scrape

from iii_core import ConfigError
from iii_core.plugins import Plugins

WHERE = "test"


def test_defaults_without_config_or_env(monkeypatch):
    for name in (
        "OTEL_ENABLED",
        "OTEL_EXPORTER_TYPE",
        "OTEL_MEMORY_MAX_SPANS",
        "III_PROMETHEUS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    s = resolve(OtelConfig(), WHERE)
    assert s.enabled and s.exporter == "memory" and s.memory_max_spans == 1000
    assert (s.prometheus_host, s.prometheus_port) == ("127.0.0.1", 9464)
    assert s.endpoint == "http://localhost:4318"


def test_env_fallbacks_and_config_wins(monkeypatch):
    monkeypatch.setenv("OTEL_MEMORY_MAX_SPANS", "7")
    monkeypatch.setenv("OTEL_EXPORTER_TYPE", "both")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_ENABLED", "false")
    s = resolve(OtelConfig(), WHERE)
    assert (s.memory_max_spans, s.exporter, s.service_name, s.enabled) == (
        7,
        "both",
        "from-env",
        False,
    )
    s = resolve(OtelConfig(memory_max_spans=9, service_name="cfg", enabled=True), WHERE)
    assert (s.memory_max_spans, s.service_name, s.enabled) == (9, "cfg", True)


def test_bad_values_name_the_key(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_TYPE", "jaeger")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_TYPE"):
        resolve(OtelConfig(), WHERE)
    monkeypatch.delenv("OTEL_EXPORTER_TYPE")
    with pytest.raises(ConfigError, match="sampling_ratio"):
        resolve(OtelConfig(sampling_ratio=2.0), WHERE)
    with pytest.raises(ConfigError, match="endpoint"):
        resolve(OtelConfig(endpoint="localhost:4317"), WHERE)


async def test_unknown_key_is_rejected(engine_factory):
    with pytest.raises(ConfigError, match=r"unknown key.*colour"):
        async with engine_factory(otel_config(colour="blue")):
            pass


@pytest.mark.parametrize("class_name", [OTEL, "modules::otel::OtelModule"])
async def test_both_class_strings_resolve(engine_factory, class_name):
    config = {"modules": [{"class": class_name, "config": {"prometheus_port": 0}}]}
    async with engine_factory(config) as engine:
        assert otel_module(engine).metrics_port


def test_the_module_is_in_the_default_configuration():
    plugins = Plugins()
    plugins.load()
    assert OTEL in [entry.class_name for entry in plugins.default_module_entries()]


async def test_disabled_tracing_still_serves_metrics(engine_factory):
    async with engine_factory(otel_config(enabled=False)) as engine:
        module = otel_module(engine)
        assert module.spans is None and module.provider is None
        await engine.call("engine::health::check", {})
        samples = await scrape(module.metrics_port)  # type: ignore[arg-type]
        key = (
            "iii_invocations_total",
            (("function_id", "engine::health::check"), ("status", "ok")),
        )
        assert samples[key] == 1


async def test_a_taken_configured_port_fails_start_up(engine_factory):
    async with engine_factory(otel_config()) as first:
        port = otel_module(first).metrics_port
        with pytest.raises(ConfigError, match="could not listen"):
            async with engine_factory(otel_config(prometheus_port=port)):
                pass
