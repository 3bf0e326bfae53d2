"""The ``iii`` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from iii_core.testing import connect_when_ready, free_port

CLI = [sys.executable, "-m", "iii_core.cli"]


def _core_only_env() -> dict[str, str]:
    """Only the core plugin: the default configuration then binds nothing but the worker port."""
    others = [ep.name for ep in importlib.metadata.entry_points(group="iii") if ep.name != "core"]
    return dict(os.environ, III_DISABLE_PLUGINS=",".join(others))


def test_version() -> None:
    out = subprocess.run([*CLI, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("iii ")


def test_modules_listing() -> None:
    out = subprocess.run([*CLI, "modules"], capture_output=True, text=True, check=True)
    assert "modules::worker::WorkerModule" in out.stdout
    assert "iii-core" in out.stdout


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [*CLI, "--config", str(tmp_path / "nope.yaml")], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "Config file not found" in out.stderr


def test_config_and_default_config_conflict() -> None:
    out = subprocess.run(
        [*CLI, "--config", "x.yaml", "--use-default-config"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "not allowed with" in out.stderr


async def test_no_config_file_runs_defaults_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "--port", str(port), "--log-format", "json"],
        cwd=tmp_path,
        env=_core_only_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        worker = await connect_when_ready(f"ws://127.0.0.1:{port}/")
        assert await worker.call("engine::functions::list", {}) == {"functions": []}
        await worker.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert "default configuration" in lines[0]["message"]
    messages = [entry["message"] for entry in lines]
    assert "[REGISTERED] Function engine::functions::list" in messages
    assert any(m.startswith("Worker ") and m.endswith("connected from 127.0.0.1") for m in messages)
    assert messages[-1] == "iii engine stopped"


async def test_config_yaml_in_working_directory_is_used(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "config.yaml").write_text(f"port: {port}\nmodules: []\n")
    proc = subprocess.Popen([*CLI], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        worker = await connect_when_ready(f"ws://127.0.0.1:{port}/")
        await worker.close()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "using config file config.yaml" in err
