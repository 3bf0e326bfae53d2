"""Worker auth with the published SDKs, unchanged: ``III_TOKEN`` in the Python SDK 0.25
(sent as ``Authorization: Bearer``) and the ``headers`` option of the Node SDK 0.22.

Plus the start-up warning for a non-loopback bind without auth.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from iii_core.testing import (
    NODE_SDK_NEWEST,
    PY_SDK_NEWEST,
    RawWorker,
    published_node_sdk,
    published_python_sdk,
    subprocess_worker,
    wait_until,
)

HERE = Path(__file__).resolve().parent
PY_WORKER = HERE.parent / "integration" / "workers" / "py_sdk_worker.py"
TOKEN = "rel-s3cret-token"
AUTH = "modules: []\nauth: {tokens_env: [III_REL_TOKEN]}\n"


def _node_command(url: str, prefix: str) -> tuple[list[str], str]:
    root = published_node_sdk(NODE_SDK_NEWEST)
    # ES modules resolve packages next to the script, so the script runs from the SDK's folder.
    shutil.copy(
        HERE / "workers" / "node_auth_worker.mjs", os.path.join(root, "node_auth_worker.mjs")
    )
    return ["node", "node_auth_worker.mjs", url, prefix], root


async def _authorized_client(port: int) -> RawWorker:
    return await RawWorker(f"ws://127.0.0.1:{port}/").connect(
        additional_headers={"Authorization": f"Bearer {TOKEN}"}
    )


@pytest.mark.parametrize("sdk", ["python-0.25", "node-0.22"])
async def test_published_sdk_token_is_accepted(
    sdk: str, engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("III_REL_TOKEN", TOKEN)
    async with engine_factory(AUTH) as engine:
        url = f"ws://127.0.0.1:{engine.port}"
        if sdk.startswith("python"):
            args = [published_python_sdk(PY_SDK_NEWEST), str(PY_WORKER), url, "authpy"]
            env, cwd, prefix = {"III_TOKEN": TOKEN}, None, "authpy"
        else:
            args, cwd = _node_command(url, "authnode")
            env, prefix = {"WORKER_TOKEN": TOKEN}, "authnode"
        with subprocess_worker(args, env=env, cwd=cwd):
            await wait_until(
                lambda: engine.functions.get(f"{prefix}.add") is not None,
                60,
                f"the {sdk} worker to register through auth",
            )
            client = await _authorized_client(engine.port)
            try:
                assert await client.call(f"{prefix}.add", {"a": 2, "b": 3}, timeout=30) == {
                    "sum": 5
                }
            finally:
                await client.close()


@pytest.mark.parametrize("sdk", ["python-0.25", "node-0.22"])
async def test_published_sdk_with_a_wrong_token_is_refused(
    sdk: str,
    engine_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("III_REL_TOKEN", TOKEN)
    caplog.set_level(logging.WARNING, logger="iii.transport")
    async with engine_factory(AUTH) as engine:
        url = f"ws://127.0.0.1:{engine.port}"
        if sdk.startswith("python"):
            args = [published_python_sdk(PY_SDK_NEWEST), str(PY_WORKER), url, "badpy"]
            env, cwd = {"III_TOKEN": "wrong"}, None
        else:
            args, cwd = _node_command(url, "badnode")
            env = {"WORKER_TOKEN": "wrong"}
        with subprocess_worker(args, env=env, cwd=cwd):
            await wait_until(
                lambda: any("refused" in r.getMessage() for r in caplog.records),
                60,
                f"the {sdk} worker's upgrade to be refused",
            )
            await asyncio.sleep(0.5)
            assert len(engine.workers) == 0
            assert not [f.id for f in engine.functions if f.id.startswith("bad")]


@pytest.mark.parametrize(
    ("auth", "warned"), [("", True), ("auth: {tokens_env: [III_REL_TOKEN]}\n", False)]
)
async def test_non_loopback_bind_without_auth_warns(
    auth: str,
    warned: bool,
    engine_factory: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("III_REL_TOKEN", TOKEN)
    caplog.set_level(logging.WARNING, logger="iii.engine")
    async with engine_factory(f"modules: []\nhost: 0.0.0.0\n{auth}"):
        pass
    warnings = [r for r in caplog.records if "without worker auth" in r.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert "0.0.0.0" in warnings[0].getMessage()


async def test_loopback_bind_does_not_warn(
    engine_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="iii.engine")
    async with engine_factory():
        pass
    assert not [r for r in caplog.records if "without worker auth" in r.getMessage()]
