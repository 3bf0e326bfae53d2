"""The HTTP API through a real engine, real uvicorn/Hypercorn and real workers (RawWorker)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from iii_rest_testutil import open_channel, rest_module, route, write_response

from iii_core.testing import raw_worker, wait_until


async def test_post_json_returns_result(rest: Any, server: str) -> None:
    seen: list[Any] = []

    async def hello(data: Any) -> Any:
        seen.append(data)
        return {
            "status_code": 201,
            "body": {"hello": data["body"]["name"]},
            "headers": {"x-a": "1"},
        }

    async with rest(server) as (engine, http), raw_worker(engine) as w:
        await route(w, "demo.hello", hello, "hello", "POST", engine)
        r = await http.post("/hello?x=1&x=2&y=a%20b", json={"name": "x"}, headers={"X-Up": "V"})
        assert r.status_code == 201
        assert r.json() == {"hello": "x"}
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-a"] == "1"
        data = seen[0]
        assert data["method"] == "POST"
        assert data["path"] == "hello"
        assert data["query_params"] == {"x": "2", "y": "a b"}
        assert data["path_params"] == {}
        assert data["headers"]["x-up"] == "V"
        assert data["body"] == {"name": "x"}
        assert data["trigger"] == {"type": "http", "path": "hello", "method": "POST"}
        assert data["request_body"]["direction"] == "read"
        assert data["response"]["direction"] == "write"
        # Every per-request channel is released.
        await wait_until(lambda: len(engine.channels) == 0, 5, "channels released")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_methods_and_path_params(rest: Any, method: str) -> None:
    async def handler(data: Any) -> Any:
        return {"status_code": 200, "body": {"params": data["path_params"], "m": data["method"]}}

    async with rest() as (engine, http), raw_worker(engine) as w:
        await route(w, "users.one", handler, "/users/:id/items/:item", method, engine)
        r = await http.request(method, "/users/a%20b/items/7")
        assert r.status_code == 200
        assert r.json() == {"params": {"id": "a%20b", "item": "7"}, "m": method}


async def test_routing_errors(rest: Any, server: str) -> None:
    async def handler(data: Any) -> Any:
        return {"status_code": 200, "body": "static"}

    async with rest(server) as (engine, http), raw_worker(engine) as w:
        await route(w, "a.get", handler, "users/me", "GET", engine)
        await route(w, "a.post", handler, "users/:id", "POST", engine)
        assert (await http.get("/nope")).status_code == 404
        assert (await http.get("/nope")).content == b""
        r = await http.delete("/users/me")
        assert r.status_code == 405
        # Static segments win over parameters, and a wrong method there is a 405.
        assert (await http.post("/users/me")).status_code == 405
        assert (await http.post("/users/42")).status_code == 200
        assert (await http.get("/users/me")).json() == "static"
        head = await http.head("/users/me")
        assert head.status_code == 404


async def test_non_json_body_streams_on_request_channel(rest: Any, server: str) -> None:
    async with rest(server) as (engine, http), raw_worker(engine) as w:

        async def upload(data: Any) -> Any:
            assert data["body"] is None
            ws = await open_channel(engine, data["request_body"])
            received = b""
            async for chunk in ws:
                received += chunk
            return {
                "status_code": 200,
                "body": {"size": len(received), "head": received[:5].decode()},
            }

        await route(w, "files.put", upload, "files", "POST", engine)
        payload = b"hello" + b"x" * 300_000

        async def gen() -> Any:
            for i in range(0, len(payload), 65536):
                yield payload[i : i + 65536]

        r = await http.post(
            "/files", content=gen(), headers={"content-type": "application/octet-stream"}
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"size": len(payload), "head": "hello"}
        form = await http.post("/files", data={"a": "1"})
        assert form.json() == {"size": 3, "head": "a=1"}


async def test_streamed_response_and_sse(rest: Any, server: str) -> None:
    async with rest(server) as (engine, http), raw_worker(engine) as w:

        async def sse(data: Any) -> Any:
            chunks = [f"data: {i}\n\n".encode() for i in range(5)]
            await write_response(
                engine, data["response"], 202, {"content-type": "text/event-stream"}, chunks
            )
            return None

        await route(w, "events.sse", sse, "events", "GET", engine)
        events = []
        async with http.stream("GET", "/events") as r:
            assert r.status_code == 202
            assert r.headers["content-type"] == "text/event-stream"
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
        assert events == ["0", "1", "2", "3", "4"]
        await wait_until(lambda: len(engine.channels) == 0, 5, "channels released")


async def test_null_return_then_late_stream(rest: Any, server: str, caplog: Any) -> None:
    """The Node http() helper opens the response channel only after returning."""
    async with rest(server, stream_warning_ms=100) as (engine, http), raw_worker(engine) as w:

        async def late(data: Any) -> Any:
            async def later() -> None:
                await asyncio.sleep(0.5)
                await write_response(engine, data["response"], 200, {"x-late": "y"}, [b"late"])

            asyncio.get_running_loop().create_task(later())
            return None

        await route(w, "late.fn", late, "late", "GET", engine)
        with caplog.at_level(logging.WARNING, logger="iii.rest"):
            r = await http.get("/late")
        assert r.status_code == 200
        assert r.content == b"late"
        assert r.headers["x-late"] == "y"
        assert any("late.fn" in rec.getMessage() for rec in caplog.records)


async def test_timeout_504_and_handler_error_500(rest: Any, server: str, caplog: Any) -> None:
    async with rest(server, default_timeout=500) as (engine, http), raw_worker(engine) as w:

        async def silent(data: Any) -> Any:
            return None

        async def slow(data: Any) -> Any:
            await asyncio.sleep(3)
            return {"status_code": 200}

        async def boom(data: Any) -> Any:
            raise ValueError("secret detail")

        await route(w, "t.silent", silent, "silent", "GET", engine)
        await route(w, "t.slow", slow, "slow", "GET", engine)
        await route(w, "t.boom", boom, "boom", "GET", engine)
        r = await http.get("/silent")
        assert r.status_code == 504
        assert r.content == b""
        assert (await http.get("/slow")).status_code == 504
        with caplog.at_level(logging.ERROR, logger="iii.rest"):
            r = await http.get("/boom", headers={"authorization": "Bearer hunter2", "x-ok": "vis"})
        assert r.status_code == 500
        body = r.json()
        assert body["error"] == "internal server error"
        assert 1 <= len(body["error_id"]) <= 12
        int(body["error_id"], 16)
        assert "secret" not in r.text
        logged = "\n".join(rec.getMessage() for rec in caplog.records)
        assert "secret detail" in logged and body["error_id"] in logged
        assert "hunter2" not in logged and "[REDACTED]" in logged and "vis" in logged
        await wait_until(lambda: not engine.router.pending, 5, "pending calls dropped")


async def test_condition_function(rest: Any, server: str) -> None:
    async with rest(server) as (engine, http), raw_worker(engine) as w:
        conditions: list[Any] = []

        async def cond(data: Any) -> Any:
            conditions.append(data)
            if data["query_params"].get("fail"):
                raise RuntimeError("condition broke")
            return data["query_params"].get("ok") == "1"

        async def handler(data: Any) -> Any:
            return {"status_code": 200, "body": "ran"}

        await w.register_function("c.cond", cond)
        await route(w, "c.fn", handler, "guarded", "GET", engine, _condition_path="c.cond")
        assert (await http.get("/guarded?ok=1")).json() == "ran"
        r = await http.get("/guarded?ok=0")
        assert r.status_code == 422
        assert r.json() == {"error": "Request condition not met", "skipped": True}
        assert (await http.get("/guarded?fail=1")).status_code == 500
        assert "response" not in conditions[0] and "request_body" not in conditions[0]


async def test_result_shapes(rest: Any) -> None:
    results = iter(
        [
            {"status_code": 700, "body": None},
            {"status_code": "201", "body": [1]},
            {"statusCode": 201},
            "just a string",
            {"status_code": 200, "body": {"a": 1}, "headers": {"content-type": "text/x", "x": 5}},
        ]
    )

    async def handler(data: Any) -> Any:
        return next(results)

    async with rest() as (engine, http), raw_worker(engine) as w:
        await route(w, "r.fn", handler, "r", "GET", engine)
        r = await http.get("/r")
        assert (r.status_code, r.content) == (200, b"null")
        r = await http.get("/r")
        assert (r.status_code, r.json()) == (200, [1])
        r = await http.get("/r")
        assert (r.status_code, r.json()) == (200, {})
        r = await http.get("/r")
        assert (r.status_code, r.json()) == (200, {})
        r = await http.get("/r")
        assert r.headers["content-type"] == "text/x" and "x" not in r.headers


async def test_cors(rest: Any, server: str) -> None:
    async def handler(data: Any) -> Any:
        return {"status_code": 200, "body": 1}

    cors = {"allowed_origins": ["https://good.example"], "allowed_methods": ["GET", "POST"]}
    async with rest(server, cors=cors) as (engine, http), raw_worker(engine) as w:
        await route(w, "cors.fn", handler, "c", "POST", engine)
        pre = await http.options(
            "/c",
            headers={
                "origin": "https://good.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "x-custom",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://good.example"
        assert "x-custom" in pre.headers["access-control-allow-headers"].lower()
        bad = await http.options(
            "/c",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in bad.headers
        r = await http.post("/c", headers={"origin": "https://good.example"})
        assert r.headers["access-control-allow-origin"] == "https://good.example"
    async with rest(server) as (engine, http), raw_worker(engine) as w:
        await route(w, "cors.fn", handler, "c", "POST", engine)
        r = await http.post("/c", headers={"origin": "https://any.example"})
        assert r.headers["access-control-allow-origin"] == "*"


async def test_same_headers_with_and_without_the_middleware(rest: Any, server: str) -> None:
    """A request without ``Origin`` skips the Starlette middleware (the handler's front door): it
    gets the ``Vary: Origin`` the CORS middleware would add, merged with the function's own."""

    async def handler(data: Any) -> Any:
        return {"status_code": 200, "body": 1, "headers": {"vary": "Accept"}}

    async def plain(data: Any) -> Any:
        return {"status_code": 200, "body": 1}

    async with rest(server) as (engine, http), raw_worker(engine) as w:
        await route(w, "vary.fn", handler, "v", "GET", engine)
        await route(w, "plain.fn", plain, "p", "GET", engine)
        r = await http.get("/v")
        assert r.status_code == 200
        assert r.headers.get_list("vary") == ["Accept, Origin"]
        r = await http.get("/p")
        assert r.headers.get_list("vary") == ["Origin"]
        missing = await http.get("/nowhere")  # through Starlette: same header
        assert missing.status_code == 404
        assert missing.headers.get_list("vary") == ["Origin"]
        wrong = await http.post("/p")
        assert wrong.status_code == 405
        assert wrong.headers.get_list("vary") == ["Origin"]
        cross = await http.get("/v", headers={"origin": "https://a.example"})
        assert cross.headers["access-control-allow-origin"] == "*"


async def test_routes_added_to_the_starlette_app_are_served(rest: Any, server: str) -> None:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as StarletteRoute

    async def health(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async with rest(server) as (engine, http):
        module = rest_module(engine)
        module.app.router.routes.insert(0, StarletteRoute("/health", health))
        r = await http.get("/health")
        assert (r.status_code, r.text) == (200, "ok")


async def test_body_limit_413(rest: Any, server: str) -> None:
    async def handler(data: Any) -> Any:
        if data["body"] is None:
            ws = await open_channel(engine, data["request_body"])
            async for _ in ws:
                pass
        return {"status_code": 200}

    async with rest(server, max_body_bytes=1000) as (engine, http), raw_worker(engine) as w:
        await route(w, "big.fn", handler, "big", "POST", engine)
        assert (await http.post("/big", json={"a": "x" * 10})).status_code == 200
        assert (await http.post("/big", json={"a": "x" * 2000})).status_code == 413

        async def chunked() -> Any:
            for _ in range(10):
                yield b"y" * 500

        r = await http.post("/big", content=chunked(), headers={"content-type": "text/plain"})
        assert r.status_code == 413


async def test_concurrency_limit_503(rest: Any, server: str) -> None:
    release = asyncio.Event()

    async def slow(data: Any) -> Any:
        await release.wait()
        return {"status_code": 200, "body": "done"}

    async with rest(server, concurrency_request_limit=3) as (engine, http), raw_worker(engine) as w:
        await route(w, "slow.fn", slow, "slow", "GET", engine)
        module = rest_module(engine)
        first = [asyncio.ensure_future(http.get("/slow")) for _ in range(3)]
        await wait_until(lambda: module.handler.inflight == 3, 10, "3 requests in flight")
        r = await http.get("/slow")
        assert r.status_code == 503
        release.set()
        assert [(await f).status_code for f in first] == [200, 200, 200]


async def test_many_concurrent_requests(rest: Any, server: str) -> None:
    async def echo(data: Any) -> Any:
        await asyncio.sleep(0.05)
        return {"status_code": 200, "body": data["query_params"]["i"]}

    async with rest(server) as (engine, http), raw_worker(engine) as w:
        await route(w, "echo.fn", echo, "echo", "GET", engine)
        results = await asyncio.gather(*(http.get(f"/echo?i={i}") for i in range(200)))
        assert [r.json() for r in results] == [str(i) for i in range(200)]


async def test_rolling_restart_keeps_route(rest: Any, server: str) -> None:
    async def old(data: Any) -> Any:
        return {"status_code": 200, "body": "old"}

    async def new(data: Any) -> Any:
        return {"status_code": 200, "body": "new"}

    async with rest(server) as (engine, http), raw_worker(engine) as w1:
        await route(w1, "svc.fn", old, "svc", "GET", engine)
        assert (await http.get("/svc")).json() == "old"
        async with raw_worker(engine) as w2:
            await route(w2, "svc.fn", new, "svc", "GET", engine)
            await w1.close()
            await wait_until(lambda: len(engine.workers) == 1, 10, "old worker gone")
            for _ in range(5):
                assert (await http.get("/svc")).json() == "new"
        await wait_until(lambda: len(engine.triggers) == 0, 10, "triggers removed")
        assert (await http.get("/svc")).status_code == 404


async def test_bad_trigger_config_rejected(rest: Any) -> None:
    async with rest() as (engine, http), raw_worker(engine) as w:
        await w.register_function("bad.fn", lambda d: d)
        tid = await w.register_trigger("http", "bad.fn", {"http_method": "GET"})
        msg = await asyncio.wait_for(w.inbox.get(), 5)
        assert msg["type"] == "triggerregistrationresult" and msg["id"] == tid
        assert "api_path is required" in msg["error"]["message"]
        # An unknown method is stored without a route.
        tid2 = await w.register_trigger("http", "bad.fn", {"api_path": "x", "http_method": "BREW"})
        await wait_until(lambda: engine.triggers.get(tid2) is not None, 5, "stored trigger")
        assert (await http.get("/x")).status_code == 404


async def test_unknown_config_key_rejected() -> None:
    from iii_core import ConfigError
    from iii_core.testing import running_engine

    with pytest.raises(ConfigError, match="prot"):
        async with running_engine(
            {"modules": [{"class": "modules::api::RestApiModule", "config": {"prot": 1}}]}
        ):
            pass


async def test_json_request_channel_stays_open_until_response(rest: Any) -> None:
    """As in the reference, a JSON request's body channel ends when the response is produced."""
    async with rest(server="uvicorn") as (engine, http), raw_worker(engine) as w:

        async def handler(data: Any) -> Any:
            ws = await open_channel(engine, data["request_body"])
            try:
                await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                return {"status_code": 200, "body": "open"}
            finally:
                await ws.close()
            return {"status_code": 200, "body": "closed"}

        await route(w, "j.fn", handler, "j", "POST", engine)
        assert (await http.post("/j", json={})).json() == "open"
        assert json.loads((await http.post("/j", json={})).content) == "open"


async def test_deeply_nested_json_body_reaches_route_as_null(rest: Any, server: str) -> None:
    """Nesting too deep to decode is invalid JSON (``body: null``), not a server error."""
    async with rest(server) as (engine, http), raw_worker(engine) as w:

        async def echo(data: Any) -> Any:
            return {"status_code": 200, "body": {"got": data["body"]}}

        await route(w, "deep.echo", echo, "deep", "POST", engine)
        deep = b"[" * 5000 + b"]" * 5000
        r = await http.post("/deep", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 200
        assert r.json() == {"got": None}


async def test_unfinished_request_head_is_closed(rest: Any, server: str) -> None:
    """A client that never finishes its headers is disconnected after ``header_timeout``; a
    complete request on another connection is served meanwhile."""
    async with rest(server, header_timeout=500) as (engine, http), raw_worker(engine) as w:

        async def ok(data: Any) -> Any:
            return {"status_code": 200, "body": "ok"}

        await route(w, "slow.ok", ok, "ok", "GET", engine)
        port = rest_module(engine).port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            assert (await http.get("/ok")).json() == "ok"
            # The server closes the connection (EOF) well before this test's own limit.
            assert await asyncio.wait_for(reader.read(), 15) == b""
        finally:
            writer.close()
