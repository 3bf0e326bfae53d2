"""The HTTP API with workers written with the published SDKs (PyPI iii-sdk, npm iii-sdk)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from iii_rest_testutil import rest_module

from iii_core.testing import (
    published_node_sdk,
    published_python_sdk,
    subprocess_worker,
    wait_until,
)

PY_WORKER = textwrap.dedent(
    """
    import sys, time
    from iii import register_worker
    from iii_helpers.http import http

    iii = register_worker(sys.argv[1])

    async def hello(data):
        return {"status_code": 200, "body": {"hello": data["body"]["name"], "via": "py"},
                "headers": {"x-sdk": "py"}}

    async def upload(req, res):
        data = await req.request_body.read_all()
        await res.status(201)
        await res.headers({"content-type": "text/plain"})
        await res.writer.write(b"got " + str(len(data)).encode())
        await res.writer.close_async()
        return None

    iii.register_function("py.hello", hello)
    iii.register_trigger({"type": "http", "function_id": "py.hello",
                          "config": {"api_path": "py/hello", "http_method": "POST"}})
    iii.register_function("py.upload", http(upload))
    iii.register_trigger({"type": "http", "function_id": "py.upload",
                          "config": {"api_path": "py/upload/:name", "http_method": "PUT"}})
    while True:
        time.sleep(1)
    """
)

NODE_WORKER = textwrap.dedent(
    """
    import { registerWorker } from 'iii-sdk'
    import { http } from '@iii-dev/helpers/http'

    const iii = registerWorker(process.argv[2])
    iii.registerFunction('node.hello', async (req) => ({
      status_code: 200, body: { hello: req.body.name, via: 'node', id: req.path_params.id },
    }))
    iii.registerTrigger({ type: 'http', function_id: 'node.hello',
                          config: { api_path: 'node/hello/:id', http_method: 'POST' } })
    iii.registerFunction('node.stream', http(async (req, res) => {
      res.status(206)
      res.headers({ 'content-type': 'text/event-stream', 'x-node': 'yes' })
      for (let i = 0; i < 3; i++) res.stream.write(`data: ${i}\\n\\n`)
      res.stream.end()
    }))
    iii.registerTrigger({ type: 'http', function_id: 'node.stream',
                          config: { api_path: 'node/stream', http_method: 'GET' } })
    // The seed's example, as written: api_path without a leading slash.
    iii.registerFunction('hello', async (req) => ({
      status_code: 200, body: { message: `hello ${req.body.name}` },
    }))
    iii.registerTrigger({ type: 'http', function_id: 'hello',
                          config: { api_path: 'hello', http_method: 'POST' } })
    """
)


def _write(path: str, text: str) -> None:
    Path(path).write_text(text)


async def _seed_curl(port: int) -> Any:
    """The seed's command line, on the test's port instead of 3111."""
    curl = shutil.which("curl")
    assert curl is not None, "the seed example test needs curl"
    proc = await asyncio.create_subprocess_exec(
        curl,
        "-sS",
        "--fail-with-body",
        "-X",
        "POST",
        f"localhost:{port}/hello",
        "-d",
        '{"name":"x"}',
        "-H",
        "content-type: application/json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out, err)
    return json.loads(out)


def _routes_ready(engine: Any, *function_ids: str) -> bool:
    active = {t.function_id for t in engine.triggers if t.active}
    return all(f in active and engine.functions.get(f) for f in function_ids)


async def test_published_python_sdk(rest: Any, server: str) -> None:
    python = published_python_sdk("0.25.0")
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "worker.py")
        _write(script, PY_WORKER)
        async with rest(server) as (engine, http):
            with subprocess_worker([python, script, f"ws://127.0.0.1:{engine.port}"]):
                await wait_until(
                    lambda: _routes_ready(engine, "py.hello", "py.upload"), 60, "py routes"
                )
                r = await http.post("/py/hello", json={"name": "x"})
                assert r.status_code == 200, r.text
                assert r.json() == {"hello": "x", "via": "py"}
                assert r.headers["x-sdk"] == "py"
                up = await http.put(
                    "/py/upload/f.bin",
                    content=b"z" * 100_000,
                    headers={"content-type": "application/octet-stream"},
                )
                assert up.status_code == 201, up.text
                assert up.text == "got 100000"
                assert up.headers["content-type"] == "text/plain"


async def test_published_node_sdk_streams_after_return(rest: Any, server: str) -> None:
    root = published_node_sdk("0.22.1")
    script = os.path.join(root, f"rest-worker-{os.getpid()}-{server}.mjs")
    _write(script, NODE_WORKER)
    try:
        async with rest(server) as (engine, http):
            with subprocess_worker(["node", script, f"ws://127.0.0.1:{engine.port}"], cwd=root):
                await wait_until(
                    lambda: _routes_ready(engine, "node.hello", "node.stream", "hello"),
                    60,
                    "node routes",
                )
                assert await _seed_curl(rest_module(engine).port) == {"message": "hello x"}
                r = await http.post("/node/hello/42", json={"name": "n"})
                assert r.status_code == 200, r.text
                assert r.json() == {"hello": "n", "via": "node", "id": "42"}
                events = []
                async with http.stream("GET", "/node/stream") as s:
                    assert s.status_code == 206
                    assert s.headers["x-node"] == "yes"
                    assert s.headers["content-type"] == "text/event-stream"
                    async for line in s.aiter_lines():
                        if line.startswith("data: "):
                            events.append(line[6:])
                assert events == ["0", "1", "2"]
    finally:
        os.remove(script)


async def test_default_configuration_loads_rest_api() -> None:
    """``iii`` with no config loads the HTTP API (on 3111 by default)."""
    from iii_core.plugins import Plugins

    plugins = Plugins()
    plugins.load()
    names = [e.class_name for e in plugins.default_module_entries()]
    assert "modules::rest_api::RestApiModule" in names
    assert "modules::http_functions::HttpFunctionsModule" not in names
    from iii_rest.config import RestApiConfig

    assert (RestApiConfig().host, RestApiConfig().port) == ("127.0.0.1", 3111)
