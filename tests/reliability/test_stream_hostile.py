"""Hostile clients on the stream socket (iii-stream, ``module.port``), over real sockets.

Bad frames are ignored, counted and logged once per connection; an oversized one closes only
that connection (1009); a good subscriber keeps getting its events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import pytest
import websockets

from iii_core.testing import raw_worker, wait_until

STREAM = "modules::stream::StreamModule"
MAX_MESSAGE = 16 * 1024


def _stream_module(engine: Any) -> Any:
    try:
        from iii_stream import StreamModule
    except ImportError:
        pytest.fail("iii-stream is not installed: pip install -e plugins/iii-stream")
    return next(m for m in engine.modules if isinstance(m, StreamModule))


def _bad_frames() -> list[str | bytes]:
    rng = random.Random(3112)
    frames: list[str | bytes] = [
        "{",
        "[]",
        "null",
        '"x"',
        "{}",
        '{"type":"join"}',
        '{"type":"join","data":[]}',
        '{"type":"join","data":{"subscriptionId":1,"streamName":"s","groupId":"g"}}',
        '{"type":"leave","data":{"subscriptionId":"s","streamName":"s","groupId":"g","id":5}}',
        '{"type":"subscribe","data":{}}',
    ]
    frames += [
        "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 100)))
        for _ in range(30)
    ]
    return frames


def _invalid_utf8_and_deep_frames() -> list[str | bytes]:
    rng = random.Random(3113)
    frames: list[str | bytes] = [
        b'{"type":"join","data":{"subscriptionId":"\xff","streamName":"s","groupId":"g"}}',
        b"\xff\xfe\x00",
        '{"a":' * 2500 + "1" + "}" * 2500,  # 15 001 bytes: deep, yet under MAX_MESSAGE
        "[" * 5000 + "]" * 5000,
    ]
    frames += [
        bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 50))) for _ in range(5)
    ]
    return frames


def _config() -> dict[str, Any]:
    return {
        "modules": [
            {
                "class": STREAM,
                "config": {
                    "port": 0,
                    "max_message_bytes": MAX_MESSAGE,
                    "adapter": {
                        "class": "modules::stream::adapters::SqliteAdapter",
                        "config": {"path": ":memory:"},
                    },
                },
            }
        ]
    }


async def test_invalid_utf8_and_deep_frames_are_ignored(engine_factory: Any) -> None:
    async with engine_factory(_config()) as engine:
        module = _stream_module(engine)
        frames = _invalid_utf8_and_deep_frames()
        async with websockets.connect(f"ws://127.0.0.1:{module.port}/") as bad:
            for frame in frames:
                await bad.send(frame)
            await wait_until(
                lambda: module.server.invalid_frames_total == len(frames),
                10,
                "every bad frame to be counted",
            )
            await bad.send(
                json.dumps(
                    {
                        "type": "join",
                        "data": {"subscriptionId": "b", "streamName": "s", "groupId": "g"},
                    }
                )
            )
            assert json.loads(await asyncio.wait_for(bad.recv(), 10))["event"]["type"] == "sync"


async def test_hostile_stream_clients(
    engine_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="iii.stream.server")
    async with engine_factory(_config()) as engine, raw_worker(engine) as writer:
        module = _stream_module(engine)
        url = f"ws://127.0.0.1:{module.port}/"
        async with websockets.connect(url) as good:
            await good.send(
                json.dumps(
                    {
                        "type": "join",
                        "data": {"subscriptionId": "sub", "streamName": "s", "groupId": "g"},
                    }
                )
            )
            await asyncio.wait_for(good.recv(), 10)  # sync
            frames = _bad_frames()
            async with websockets.connect(url) as bad1, websockets.connect(url) as bad2:
                for i, frame in enumerate(frames):
                    await (bad1 if i % 2 else bad2).send(frame)
                for bad in (bad1, bad2):
                    await bad.ping()  # answered after every frame before it was read
                await wait_until(
                    lambda: module.server.invalid_frames_total == len(frames),
                    15,
                    "every bad frame to be counted",
                )
                warnings = [r for r in caplog.records if "ignored a frame" in r.getMessage()]
                assert len(warnings) == 2, [r.getMessage() for r in warnings]
                # Too big: only that connection is closed, with 1009.
                await bad1.send("x" * (MAX_MESSAGE + 1))
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await asyncio.wait_for(bad1.recv(), 10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
                for n in range(5):
                    await writer.call(
                        "stream::set",
                        {"stream_name": "s", "group_id": "g", "item_id": f"i{n}", "data": {"n": n}},
                    )
                got = [json.loads(await asyncio.wait_for(good.recv(), 10)) for _ in range(5)]
                assert [m["id"] for m in got] == [f"i{n}" for n in range(5)]
                await bad2.send(
                    json.dumps(
                        {
                            "type": "join",
                            "data": {"subscriptionId": "b", "streamName": "s", "groupId": "g"},
                        }
                    )
                )
                assert (
                    json.loads(await asyncio.wait_for(bad2.recv(), 10))["event"]["type"] == "sync"
                )
        await wait_until(lambda: not module.server.connections, 10, "connections released")
