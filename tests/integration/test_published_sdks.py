"""The published iii SDKs (PyPI 0.25 and 0.10, npm 0.22 and 0.9) against the engine, unchanged.

Each SDK runs as a real worker process; a bare protocol client drives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from iii_core.testing import (
    NODE_SDK_NEWEST,
    NODE_SDK_OLD,
    PY_SDK_NEWEST,
    PY_SDK_OLD,
    RawWorker,
    connect_when_ready,
    free_port,
    published_node_sdk,
    published_python_sdk,
    raw_worker,
    wait_until,
)

WORKERS = Path(__file__).resolve().parent / "workers"
SDKS = {
    "py25": ("python", PY_SDK_NEWEST),
    "py10": ("python", PY_SDK_OLD),
    "node22": ("node", NODE_SDK_NEWEST),
    "node9": ("node", NODE_SDK_OLD),
}


def _command(sdk: str, url: str) -> tuple[list[str], str | None]:
    lang, version = SDKS[sdk]
    if lang == "python":
        return [published_python_sdk(version), str(WORKERS / "py_sdk_worker.py"), url, sdk], None
    root = published_node_sdk(version)
    # ES modules resolve packages next to the script, so the script runs from the SDK's folder.
    shutil.copy(WORKERS / "node_sdk_worker.mjs", os.path.join(root, "node_sdk_worker.mjs"))
    return ["node", "node_sdk_worker.mjs", url, sdk], root


@contextlib.contextmanager
def sdk_worker(
    sdk: str, url: str, record_file: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    args, cwd = _command(sdk, url)
    env = dict(os.environ, OTEL_ENABLED="false", III_TELEMETRY_ENABLED="false")
    if record_file is not None:
        env["RECORD_FILE"] = str(record_file)
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def _ready(engine_functions: Any, prefix: str) -> None:
    await wait_until(
        lambda: engine_functions(f"{prefix}.record"),
        timeout=30,
        what=f"{prefix} worker to register its functions",
    )


@contextlib.asynccontextmanager
async def running(engine: Any, *sdks: str, record_file: Path | None = None) -> AsyncIterator[None]:
    url = f"ws://127.0.0.1:{engine.port}"
    with contextlib.ExitStack() as stack:
        for sdk in sdks:
            stack.enter_context(sdk_worker(sdk, url, record_file))
        for sdk in sdks:
            await _ready(lambda fid: engine.functions.get(fid) is not None, sdk)
        yield


@pytest.mark.parametrize("sdk", list(SDKS))
async def test_sdk_worker_registers_and_serves(engine_factory: Any, sdk: str) -> None:
    async with engine_factory() as engine, running(engine, sdk), raw_worker(engine) as caller:
        assert await caller.call(f"{sdk}.add", {"a": 2, "b": 3}) == {"sum": 5}
        listed = await caller.call("engine::functions::list", {})
        assert f"{sdk}.add" in {f["function_id"] for f in listed["functions"]}
        await wait_until(lambda: any(w.name == sdk for w in engine.workers), what="worker metadata")
        # The SDK's telemetry socket (if any) is not listed as a worker.
        workers = (await caller.call("engine::workers::list", {}))["workers"]
        assert sum(1 for w in workers if w["name"] == sdk) == 1


@pytest.mark.parametrize(("a", "b"), [("py25", "node22"), ("py10", "node9"), ("node22", "py10")])
async def test_cross_language_calls_both_ways(engine_factory: Any, a: str, b: str) -> None:
    async with engine_factory() as engine, running(engine, a, b), raw_worker(engine) as caller:
        out = await caller.call(f"{a}.relay", {"target": f"{b}.add", "data": {"a": 1, "b": 2}})
        assert out == {"ok": {"sum": 3}}
        out = await caller.call(f"{b}.relay", {"target": f"{a}.add", "data": {"a": 4, "b": 5}})
        assert out == {"ok": {"sum": 9}}


@pytest.mark.parametrize("sdk", list(SDKS))
async def test_unknown_function_and_handler_error(engine_factory: Any, sdk: str) -> None:
    async with engine_factory() as engine, running(engine, sdk), raw_worker(engine) as caller:
        out = await caller.call(f"{sdk}.relay", {"target": "does.not.exist", "data": {}})
        assert "function_not_found" in json.dumps(out)
        msg = await caller.call_raw(f"{sdk}.fail", {})
        assert msg["error"]["code"] == "invocation_failed"
        assert "boom: bad input" in msg["error"]["message"]


@pytest.mark.parametrize(("a", "b"), [("py25", "node22"), ("node9", "py10")])
async def test_fire_and_forget(engine_factory: Any, tmp_path: Path, a: str, b: str) -> None:
    record = tmp_path / "record.jsonl"
    record.touch()
    async with (
        engine_factory() as engine,
        running(engine, a, b, record_file=record),
        raw_worker(engine) as caller,
    ):
        assert await caller.call(f"{a}.void", {"target": f"{b}.record", "data": {"n": 7}}) == "sent"
        await wait_until(lambda: '"n": 7' in record.read_text() or '"n":7' in record.read_text())
        line = json.loads(record.read_text().splitlines()[0])
        assert line["n"] == 7


@pytest.mark.parametrize("sdk", ["py25", "node22"])
async def test_worker_killed_mid_call(engine_factory: Any, sdk: str) -> None:
    async with engine_factory() as engine, raw_worker(engine) as caller:
        url = f"ws://127.0.0.1:{engine.port}"
        with sdk_worker(sdk, url) as proc:
            await _ready(lambda fid: engine.functions.get(fid) is not None, sdk)
            call = asyncio.create_task(caller.call_raw(f"{sdk}.slow", {"seconds": 60}, timeout=30))
            await wait_until(lambda: len(engine.router.pending) == 1)
            started = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            msg = await call
            assert msg["error"]["code"] == "invocation_stopped"
            assert time.monotonic() - started < 10


@pytest.mark.parametrize("sdk", ["py25", "node22", "node9"])
async def test_reconnect_after_engine_restart(tmp_path: Path, sdk: str) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text("modules: []\n")

    def start_engine() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "iii_core.cli", "--config", str(config), "--port", str(port)]
        )

    url = f"ws://127.0.0.1:{port}"
    engine = start_engine()
    try:
        caller: RawWorker = await connect_when_ready(url)
        with sdk_worker(sdk, url):
            for _ in range(2):
                deadline = time.monotonic() + 30
                while True:
                    msg = await caller.call_raw(f"{sdk}.add", {"a": 1, "b": 1})
                    if msg.get("result") == {"sum": 2}:
                        break
                    assert time.monotonic() < deadline, f"{sdk} did not come back: {msg}"
                    await asyncio.sleep(0.2)
                await caller.close()
                engine.send_signal(signal.SIGTERM)
                assert engine.wait(20) == 0
                engine = start_engine()
                caller = await connect_when_ready(url)
        await caller.close()
    finally:
        engine.kill()
        engine.wait()
