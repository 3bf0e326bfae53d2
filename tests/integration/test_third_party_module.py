"""A third-party module distribution, pip-installed by the test and loaded from a config file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from iii_core.testing import connect_when_ready, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def greeter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This environment plus the example distribution, pip-installed into a directory of its own
    (its entry points are found there through ``PYTHONPATH``)."""
    target = tmp_path_factory.mktemp("greeter-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(ROOT / "examples" / "iii-example-greeter"),
        ],
        check=True,
    )
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{path}" if path else str(target))


def test_listed_by_iii_modules(greeter_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "iii_core.cli", "modules"],
        capture_output=True,
        text=True,
        check=True,
        env=greeter_env,
    ).stdout
    assert "modules::greeter::GreeterModule" in out
    assert "iii-example-greeter" in out


async def test_loaded_from_config_and_called(greeter_env: dict[str, str], tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        "modules:\n  - class: modules::greeter::GreeterModule\n"
        "    config:\n      greeting: ${III_TEST_GREETING:Hello}\n"
        "  - class: modules::observability::OtelModule\n"
        f"    config:\n      prometheus_port: {metrics_port}\n"
    )
    env = dict(greeter_env, III_TEST_GREETING="Bonjour")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iii_core.cli",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        env=env,
    )
    try:
        worker = await connect_when_ready(f"ws://127.0.0.1:{port}/")
        assert await worker.call("greeter::hello", {"name": "Ada"}) == {"message": "Bonjour, Ada!"}
        bad = await worker.call_raw("greeter::hello", {"name": ""})
        assert bad["error"]["code"] == "invalid_input"
        # The module's gauges() reach Prometheus through the otel module.
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert "counter" in next(x for x in metrics.splitlines() if "TYPE iii_greeter" in x)
        assert "iii_greeter_greetings_total 1.0" in metrics
        await worker.close()
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_bad_module_config_fails_start_with_the_key(
    greeter_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "modules:\n  - class: modules::greeter::GreeterModule\n    config: {greting: Hi}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iii_core.cli",
            "--config",
            str(config),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=greeter_env,
    )
    assert out.returncode == 2
    assert "greting" in out.stderr


def test_unknown_class_lists_installed_ones(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("modules:\n  - class: modules::nope::NopeModule\n")
    out = subprocess.run(
        [sys.executable, "-m", "iii_core.cli", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "unknown module class 'modules::nope::NopeModule'" in out.stderr
    assert "modules::worker::WorkerModule" in out.stderr
