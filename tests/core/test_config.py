"""Config parsing: interpolation and errors that name file, key and value."""

from __future__ import annotations

import pytest

from iii_core.config import load_config, parse_config
from iii_core.errors import ConfigError


def test_defaults_and_port_zero_means_default() -> None:
    config = parse_config("port: 0\n", "c.yaml")
    assert config.port == 49134
    assert config.host == "127.0.0.1"
    assert config.modules is None


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("III_TEST_PORT", "5000")
    monkeypatch.delenv("III_TEST_UNSET", raising=False)
    config = parse_config(
        "port: ${III_TEST_PORT}\nhost: ${III_TEST_UNSET:0.0.0.0}\n"
        "modules:\n  - class: x\n    config: {empty: '${III_TEST_UNSET:}'}\n",
        "c.yaml",
    )
    assert config.port == 5000
    assert config.host == "0.0.0.0"
    assert config.modules is not None and config.modules[0].config == {"empty": ""}


def test_unset_variable_without_default_names_file_and_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("III_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match=r"c.yaml:2: environment variable 'III_TEST_UNSET'"):
        parse_config("port: 1\nhost: ${III_TEST_UNSET}\n", "c.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: abc", r"c.yaml: key 'port'.*expected int.*'abc'"),
        ("bogus: 1", r"c.yaml: unknown key\(s\) bogus"),
        ("modules: {}", r"'modules' must be a list"),
        ("modules: [{config: {}}]", r"modules\[0\]: each module needs a 'class'"),
        ("modules: [{class: a, cfg: 1}]", r"modules\[0\]: unknown key\(s\) cfg"),
        ("modules: [{class: a, config: [1]}]", r"modules\[0\].config: expected a mapping"),
        ("- 1", r"top level must be a mapping"),
        ("port: [", r"not valid YAML"),
        ("send_queue_size: 0", r"key 'send_queue_size': must be a positive integer \(got 0\)"),
        ("shutdown_grace_ms: -5", r"key 'shutdown_grace_ms': must be zero or more \(got -5\)"),
        ("invocation_timeout_ms: 0", r"key 'invocation_timeout_ms': must be a positive"),
        ("auth: {auth_timeout_ms: 0}", r"key 'auth_timeout_ms': must be a positive"),
    ],
)
def test_errors_name_the_key_and_value(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "c.yaml")


def test_missing_file(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config("/nonexistent/iii.yaml")
