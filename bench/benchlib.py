"""Helpers shared by the benchmark scripts: ports, child processes, the Node clients."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 20) -> None:
    """Wait until something listens on ``port`` (fail early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


@contextlib.contextmanager
def process(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    """A child process for the duration of the block: terminated, then killed if it lingers."""
    proc: subprocess.Popen[Any] = subprocess.Popen(args, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def engine_command(config_text: str, port: int) -> list[str]:
    """The command that runs the engine (``iii``) on ``port`` with ``config_text`` as its
    config file (written to a temporary file), logging warnings only."""
    config = Path(tempfile.mkdtemp()) / "bench.yaml"
    config.write_text(config_text)
    return [
        sys.executable,
        *("-m", "iii_core.cli", "--config", str(config), "--port", str(port)),
        *("--log-level", "warning"),
    ]


def ensure_node_clients() -> None:
    """The Node clients need ``ws`` from ``bench/node_modules`` (installed on first use)."""
    if shutil.which("node") is None:
        sys.exit("node is not installed (apt-get install -y nodejs npm)")
    if not (HERE / "node_modules" / "ws").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True
        )
