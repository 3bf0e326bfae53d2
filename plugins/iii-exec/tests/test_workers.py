"""Real workers (the published SDKs) started by the module, hot reload, and the ``iii`` CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from exec_helpers import lines, live_in_group, write

from iii_core.testing import (
    published_node_sdk,
    published_python_sdk,
    raw_worker,
    wait_until,
)

TOUR = Path(__file__).resolve().parents[3] / "examples" / "tour"
QUIET = {"OTEL_ENABLED": "false", "III_TELEMETRY_ENABLED": "false"}


def _greeting(total: int) -> dict[str, str]:
    return {"message": f"Hello, Ada! (Python says 2 + 3 = {total})"}


async def _call_until(worker, function_id: str, data, expected, timeout: float) -> None:
    """Call until the answer is ``expected`` (a worker may be restarting meanwhile)."""
    answers: list[object] = []

    async def attempt() -> None:
        try:
            answers.append(await worker.call(function_id, data, timeout=10))
        except (RuntimeError, TimeoutError) as exc:
            answers.append(exc)

    deadline = asyncio.get_running_loop().time() + timeout
    while not answers or answers[-1] != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{function_id} never answered {expected!r}: {answers[-3:]}")
        await attempt()
        if answers[-1] != expected:
            await asyncio.sleep(0.2)


async def test_tour_workers_call_each_other_and_reload(engine_factory, tmp_path):
    """The tour's two workers (published Python and Node SDKs), each started by an exec module;
    editing the Python file restarts that worker only, and the new code answers."""
    python = published_python_sdk("0.25.0")
    node_modules = Path(published_node_sdk("0.22.1")) / "node_modules"
    for name in ("python_worker.py", "node_worker.mjs"):
        shutil.copy(TOUR / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(node_modules)
    config = {
        "modules": [
            {
                "class": "modules::shell::ExecModule",
                "config": {
                    "name": "python",
                    "exec": [f"echo $$ >> py_pids; exec {python} python_worker.py"],
                    "watch": ["python_worker.py"],
                    "cwd": str(tmp_path),
                    "env": QUIET,
                },
            },
            {
                "class": "modules::shell::ExecModule",
                "config": {
                    "name": "node",
                    "exec": ["echo $$ >> node_pids; exec node node_worker.mjs"],
                    "watch": ["*.mjs"],
                    "cwd": str(tmp_path),
                    "env": QUIET,
                },
            },
        ]
    }
    async with engine_factory(config) as engine, raw_worker(engine) as client:
        await wait_until(
            lambda: {"math.add", "greet.hello"} <= engine.functions.ids(), 60, "both workers"
        )
        assert await client.call("math.add", {"a": 2, "b": 3}) == {"sum": 5}
        await _call_until(client, "greet.hello", {"name": "Ada"}, _greeting(5), 30)
        old_python = int(lines(tmp_path / "py_pids")[0])

        source = (tmp_path / "python_worker.py").read_text()
        assert 'data["a"] + data["b"]' in source
        edited = source.replace('data["a"] + data["b"]', 'data["a"] * data["b"]')
        write(tmp_path / "python_worker.py", edited)

        await _call_until(client, "greet.hello", {"name": "Ada"}, _greeting(6), 60)
        assert len(lines(tmp_path / "py_pids")) == 2
        assert len(lines(tmp_path / "node_pids")) == 1  # the Node worker was not restarted
        assert live_in_group(old_python) == []
        pgids = [int(lines(tmp_path / "py_pids")[-1]), int(lines(tmp_path / "node_pids")[0])]
    for pgid in pgids:
        assert live_in_group(pgid) == []


def _start_cli(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "iii_core.cli", "-c", str(config), "--port", "0"],
        cwd=config.parent,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_sigterm_to_the_cli_stops_the_children(tmp_path):
    """``iii`` killed with SIGTERM runs engine.stop(), which stops the exec module's groups."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "modules": [
                    {
                        "class": "modules::shell::ExecModule",
                        "config": {
                            "exec": ["sleep 304 & echo $$ > pgid; wait"],
                            "cwd": str(tmp_path),
                            "stop_grace_ms": 1000,
                        },
                    }
                ]
            }
        )
    )
    proc = _start_cli(config)
    try:
        await wait_until(lambda: bool(lines(tmp_path / "pgid")) or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        pgid = int(lines(tmp_path / "pgid")[0])
        await wait_until(lambda: len(live_in_group(pgid)) == 2, 10, "the shell and its sleep")
        proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: proc.poll() is not None, 20, "the engine to exit")
        assert proc.returncode == 0
        assert live_in_group(pgid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
