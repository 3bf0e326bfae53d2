"""The 10 000-connection benchmark, run small as a correctness check (issue: scale of connections).

``bench/connections_bench.py`` exits 1 when a connection or a call fails, when the engine closes
a crowd socket, or when the registries do not return to their baseline after the crowd leaves.
CI runs it with 1 000 connections; ``III_SOAK=1`` runs the full 10 000.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_crowd_of_workers_connects_is_served_and_leaves_no_trace() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed (apt-get install -y nodejs npm)")
    if not (BENCH / "node_modules" / "ws").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=BENCH, check=True
        )
    connections = "10000" if os.environ.get("III_SOAK") else "1000"
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH / "connections_bench.py"),
            "--connections",
            connections,
            "--procs",
            "2",
            "--seconds",
            "1",
            "--rounds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{connections} of {connections}" in out.stdout
