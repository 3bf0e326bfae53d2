"""HTTP-invoked functions against a real local HTTP server (aiohttp), called through the engine."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from iii_core.testing import local_http_server, raw_worker, running_engine, wait_until

HF = "modules::http_functions::HttpFunctionsModule"
OPEN = {"security": {"block_private_ips": False, "require_https": False}}


@contextlib.asynccontextmanager
async def target_server() -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    """A local server: /ok echoes, /empty gives 204, /text gives non-JSON, /fail gives 418."""
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        bodies.append(await request.read())
        name = request.match_info["name"]
        if name == "ok":
            return web.json_response({"echo": json.loads(bodies[-1]), "method": request.method})
        if name == "empty":
            return web.Response(status=204)
        if name == "text":
            return web.Response(text="not json")
        if name == "coded":
            return web.json_response({"error": {"code": "nope", "message": "said no"}}, status=400)
        return web.Response(status=418)

    app = web.Application()
    app.router.add_route("*", "/{name}", handle)
    async with local_http_server(app) as base:
        yield base, seen, bodies


async def _registered(engine: Any, function_id: str) -> None:
    await wait_until(lambda: engine.functions.get(function_id) is not None, 5, function_id)


async def test_calls_with_each_auth_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "tok-1")
    monkeypatch.setenv("HF_KEY", "key-1")
    monkeypatch.setenv("HF_SECRET", "sec-1")
    async with (
        target_server() as (base, seen, bodies),
        running_engine({"modules": [{"class": HF, "config": OPEN}]}) as engine,
        raw_worker(engine) as w,
        raw_worker(engine) as caller,
    ):
        auths = {
            "f.bearer": {"type": "bearer", "token_key": "HF_TOKEN"},
            "f.apikey": {"type": "api_key", "header": "x-key", "value_key": "HF_KEY"},
            "f.hmac": {"type": "hmac", "secret_key": "HF_SECRET"},
        }
        for fid, auth in auths.items():
            await w.send(
                {
                    "type": "registerfunction",
                    "id": fid,
                    "invocation": {"url": f"{base}/ok", "auth": auth, "headers": {"x-extra": "e"}},
                }
            )
            await _registered(engine, fid)
        assert await caller.call("f.bearer", {"a": 1}) == {
            "echo": {"a": 1, "_caller_worker_id": caller.worker_id},
            "method": "POST",
        }
        h = seen[-1].headers
        assert h["Authorization"] == "Bearer tok-1"
        assert h["x-iii-Function-Path"] == "f.bearer" and h["x-extra"] == "e"
        assert h["Content-Type"] == "application/json" and h["x-iii-Invocation-ID"]
        await caller.call("f.apikey", {})
        assert seen[-1].headers["x-key"] == "key-1"
        await caller.call("f.hmac", {"b": 2})
        h = seen[-1].headers
        signed = f"{h['x-iii-Timestamp']}:{base64.b64encode(bodies[-1]).decode()}".encode()
        expected = hmac.new(b"sec-1", signed, hashlib.sha256).hexdigest()
        assert h["x-iii-Signature"] == f"sha256={expected}"
        listed = await caller.call("engine::functions::list", {})
        assert {"f.bearer", "f.apikey", "f.hmac"} <= {f["function_id"] for f in listed["functions"]}
        # Removed with its worker; unregisterfunction removes one.
        await w.send({"type": "unregisterfunction", "id": "f.hmac"})
        await wait_until(lambda: engine.functions.get("f.hmac") is None, 5, "unregistered")
        await w.close()
        await wait_until(lambda: engine.functions.get("f.bearer") is None, 5, "removed")


async def test_response_handling() -> None:
    async with (
        target_server() as (base, seen, _bodies),
        running_engine({"modules": [{"class": HF, "config": OPEN}]}) as engine,
        raw_worker(engine) as w,
    ):
        for name in ("empty", "text", "coded", "teapot"):
            method = "PUT" if name == "empty" else "POST"
            await w.send(
                {
                    "type": "registerfunction",
                    "id": f"r.{name}",
                    "invocation": {"url": f"{base}/{name}", "method": method},
                }
            )
            await _registered(engine, f"r.{name}")
        assert (await w.call_raw("r.empty", {})).get("result") is None
        assert seen[-1].method == "PUT"
        assert (await w.call_raw("r.text", {}))["error"]["code"] == "invalid_response"
        assert (await w.call_raw("r.coded", {}))["error"] == {"code": "nope", "message": "said no"}
        err = (await w.call_raw("r.teapot", {}))["error"]
        assert (err["code"], err["message"]) == ("http_error", "HTTP 418")


@pytest.mark.parametrize(
    ("config", "invocation", "reason"),
    [
        (None, {"url": "http://example.com/x"}, "not https"),
        (None, {"url": "https://127.0.0.1/x"}, "private address"),
        (None, {"url": "https://localhost/x"}, "private address"),
        (
            {"security": {"url_allowlist": ["*.example.com"], "require_https": False}},
            {"url": "http://evil.test/x"},
            "url_allowlist",
        ),
        (
            OPEN,
            {"url": "http://127.0.0.1:1/x", "auth": {"type": "bearer", "token_key": "NOPE_UNSET"}},
            "NOPE_UNSET",
        ),
        (OPEN, {"url": "ftp://127.0.0.1/x"}, "invalid URL"),
        (OPEN, {"url": "http://127.0.0.1:1/x", "method": "BREW"}, "method"),
    ],
)
async def test_refusals(config: Any, invocation: dict[str, Any], reason: str, caplog: Any) -> None:
    module: dict[str, Any] = {"class": HF}
    if config is not None:
        module["config"] = config
    async with running_engine({"modules": [module]}) as engine, raw_worker(engine) as w:
        with caplog.at_level(logging.ERROR, logger="iii.rest.http_functions"):
            await w.send({"type": "registerfunction", "id": "x.fn", "invocation": invocation})
            await w.register_function("marker.fn", lambda d: d)
            await wait_until(lambda: engine.functions.get("marker.fn") is not None, 5, "marker")
        assert engine.functions.get("x.fn") is None
        messages = [r.getMessage() for r in caplog.records]
        assert any("x.fn" in m and reason in m for m in messages), messages


async def test_without_module_registration_is_ignored() -> None:
    async with running_engine({"modules": []}) as engine, raw_worker(engine) as w:
        await w.send(
            {"type": "registerfunction", "id": "x.fn", "invocation": {"url": "https://a.b"}}
        )
        await w.register_function("marker.fn", lambda d: d)
        await wait_until(lambda: engine.functions.get("marker.fn") is not None, 5, "marker")
        assert engine.functions.get("x.fn") is None
