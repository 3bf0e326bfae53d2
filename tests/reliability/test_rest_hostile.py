"""Hostile HTTP clients against the HTTP API module (iii-rest), over raw sockets.

Malformed requests get a 4xx (or reach the route with ``body: null``) or a closed connection, never
a 5xx, a hang or an engine crash; bodies past
``max_body_bytes`` get 413; a well-behaved route and two workers calling each other keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import httpx
import pytest

from iii_core.testing import raw_worker, wait_until

REST = "modules::rest_api::RestApiModule"
LIMIT = 4096


def _rest_module(engine: Any) -> Any:
    try:
        from iii_rest import RestApiModule
    except ImportError:
        pytest.fail("iii-rest is not installed: pip install -e plugins/iii-rest")
    return next(m for m in engine.modules if isinstance(m, RestApiModule))


MALFORMED: list[bytes] = [
    b"GARBAGE\r\n\r\n",
    b"\x00\x01\x02\xff\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost x\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 9\r\n\r\nabc",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 8\r\n\r\n{"a":\xff\xfe}',
    b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"GET /" + b"%" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /echo?" + b"&".join(b"k%d=v" % i for i in range(5000)) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
]


def _random_requests(count: int) -> list[bytes]:
    rng = random.Random(1009)
    out = []
    for _ in range(count):
        line = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        out.append(rng.choice([line, b"GET /echo HTTP/1.1\r\n" + line + b"\r\n\r\n"]) + b"\r\n\r\n")
    return out


DEEP_JSON = (
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4001\r\n\r\n" + b"[" * 2000 + b"1" + b"]" * 2000
)
UNFINISHED = b"GET /echo HTTP/1.1\r\nHost: x\r\n"


async def _send_raw(port: int, request: bytes, wait: float = 15) -> bytes:
    """Send ``request``; return whatever comes back before the server answers or closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
        with contextlib.suppress(ConnectionError):
            return await asyncio.wait_for(reader.read(65536), wait)
        return b""
    except TimeoutError:
        return b"<hang>"
    finally:
        writer.close()


async def test_malformed_requests_and_huge_bodies(engine_factory: Any) -> None:
    config = {"modules": [{"class": REST, "config": {"port": 0, "max_body_bytes": LIMIT}}]}
    async with engine_factory(config) as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        port = _rest_module(engine).port

        async def echo(data: Any) -> Any:
            return {"status_code": 200, "body": {"got": data.get("body")}}

        async def plus_one(data: Any) -> Any:
            return data["n"] + 1

        await a.register_function("rel.echo", echo)
        await b.register_function("rel.plus", plus_one)
        trigger = await a.register_trigger(
            "http", "rel.echo", {"api_path": "echo", "http_method": "POST"}
        )
        await wait_until(lambda: (t := engine.triggers.get(trigger)) is not None and t.active, 10)
        await wait_until(lambda: engine.functions.get("rel.plus") is not None)

        async def keep_calling() -> int:
            for n in range(150):
                assert await a.call("rel.plus", {"n": n}) == n + 1
                await asyncio.sleep(0.01)
            return 150

        calls = asyncio.ensure_future(keep_calling())
        replies = await asyncio.gather(
            *(_send_raw(port, r) for r in MALFORMED + _random_requests(60))
        )
        for request, reply in zip(MALFORMED + _random_requests(60), replies, strict=True):
            assert reply != b"<hang>", request[:80]
            if reply:
                status = int(reply.split(b" ", 2)[1])
                # Invalid JSON bodies reach the route as ``body: null`` (200); nothing may be 5xx.
                assert status < 500 or status == 505, (request[:80], reply[:200])
        assert await calls == 150

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            too_big = await http.post(
                "/echo",
                content=b"x" * (LIMIT + 1),
                headers={"content-type": "application/octet-stream"},
            )
            assert too_big.status_code == 413

            async def chunks() -> Any:
                for _ in range(10):
                    yield b"y" * 1000

            streamed = await http.post("/echo", content=chunks())  # chunked, no length
            assert streamed.status_code == 413
            ok = await http.post("/echo", json={"n": 1})
            assert ok.status_code == 200 and ok.json() == {"got": {"n": 1}}
        assert engine.workers.active_count() == 2


async def test_deeply_nested_json_body_is_not_a_server_error(engine_factory: Any) -> None:
    config = {"modules": [{"class": REST, "config": {"port": 0}}]}
    async with engine_factory(config) as engine, raw_worker(engine) as a:

        async def echo(data: Any) -> Any:
            return {"status_code": 200, "body": {"got": data.get("body")}}

        await a.register_function("rel.echo", echo)
        trigger = await a.register_trigger(
            "http", "rel.echo", {"api_path": "echo", "http_method": "POST"}
        )
        await wait_until(lambda: (t := engine.triggers.get(trigger)) is not None and t.active, 10)
        reply = await _send_raw(_rest_module(engine).port, DEEP_JSON)
        assert int(reply.split(b" ", 2)[1]) < 500, reply[:200]


async def test_unfinished_request_head_is_closed(engine_factory: Any) -> None:
    config = {"modules": [{"class": REST, "config": {"port": 0}}]}
    async with engine_factory(config) as engine:
        reply = await _send_raw(_rest_module(engine).port, UNFINISHED, wait=10)
        assert reply != b"<hang>"
