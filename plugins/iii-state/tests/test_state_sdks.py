"""``state::*`` and ``kv_server::*`` called from the published Python and Node SDKs, each in
its own process, with a ``state`` trigger registered by the SDK worker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Any

import pytest

from iii_core.testing import published_node_sdk, published_python_sdk

CLIENTS = os.path.join(os.path.dirname(__file__), "sdk_clients")


async def run_client(args: list[str], cwd: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "OTEL_ENABLED": "false", "III_TELEMETRY_ENABLED": "false"}
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [line for line in stdout.decode().splitlines() if line.startswith("{")]
    assert lines, f"client printed no result (exit code {proc.returncode})"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def check(out: dict[str, Any], scope: str, index: str) -> None:
    assert out["set"] == {"old_value": None, "new_value": {"n": 1}}
    assert out["get"] == {"n": 1}
    assert out["update"] == {"old_value": {"n": 1}, "new_value": {"n": 3, "tag": "x", "d": -1}}
    assert out["list"] == [{"n": 3, "tag": "x", "d": -1}]
    assert scope in out["groups"]["groups"]
    assert out["delete"] == {"n": 3, "tag": "x", "d": -1}
    assert out["get_missing"] is None
    assert out["kv_set"] == {"old_value": None, "new_value": 1}
    assert out["kv_get"] == 1
    event = out["event"]
    assert event is not None, "the SDK's state trigger never fired"
    assert event["type"] == "state" and event["scope"] == scope and event["key"] == "watched"
    assert event["event_type"] == "state:created" and event["old_value"] is None


@pytest.fixture
def sdk_config(adapter_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "modules": [
            {"class": "modules::state::StateModule", "config": {"adapter": adapter_config}},
            {"class": "modules::kv_server::KvServer", "config": {"path": ":memory:"}},
        ]
    }


async def test_published_python_sdk(engine_factory: Any, sdk_config: dict[str, Any]) -> None:
    python = await asyncio.to_thread(published_python_sdk, "0.25.0")
    async with engine_factory(sdk_config) as engine:
        url = f"ws://127.0.0.1:{engine.port}"
        out = await run_client([python, os.path.join(CLIENTS, "state_client.py"), url])
    check(out, "py", "pyi")


async def test_published_node_sdk(engine_factory: Any, sdk_config: dict[str, Any]) -> None:
    root = await asyncio.to_thread(published_node_sdk, "0.22.1")
    async with engine_factory(sdk_config) as engine:
        url = f"ws://127.0.0.1:{engine.port}"
        script = os.path.join(CLIENTS, "state_client.mjs")
        # ESM resolves bare imports from the script's location, so run a copy inside root.
        copy = os.path.join(root, f"state_client_{os.getpid()}.mjs")
        shutil.copyfile(script, copy)
        try:
            out = await run_client(["node", copy, url], cwd=root)
        finally:
            os.unlink(copy)
    check(out, "node", "nodei")
