"""The examples in examples/python-sdk run against a real engine and exit cleanly."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python-sdk")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("hello.py", ["Hello, Ada!", "QUIET PLEASE", "not found: function_not_found"]),
        ("channels.py", ["'bytes': 1000000"]),
        ("trigger_type.py", ["tick 1", "tick 2", "tick 3"]),
    ],
)
async def test_example_runs(engine_factory, script: str, expected: list[str]) -> None:
    async with engine_factory() as engine:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            os.path.join(EXAMPLES, script),
            env={**os.environ, "III_URL": f"ws://127.0.0.1:{engine.port}"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        for line in expected:
            assert line in out.decode()
