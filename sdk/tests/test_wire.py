"""The frames this SDK sends, checked against the published SDKs' recordings (tests/vectors)
with a small recording server in place of the engine: replay order on every connection, field
sets, and tolerance of frames it does not understand."""

from __future__ import annotations

import json
import uuid
from typing import Any

import iii_worker
import websockets
from iii_worker import ReconnectConfig
from websockets.asyncio.server import ServerConnection, serve

from iii_core.testing import wait_until


class Recorder:
    def __init__(self) -> None:
        self.conns: list[list[dict[str, Any]]] = []
        self.sockets: list[ServerConnection] = []

    async def handler(self, ws: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        self.conns.append(frames)
        self.sockets.append(ws)
        await ws.send(json.dumps({"type": "workerregistered", "worker_id": str(uuid.uuid4())}))
        # things a newer engine may send: all must be ignored without harm
        await ws.send(json.dumps({"type": "somethingnew", "x": 1}))
        await ws.send("not json at all")
        await ws.send(json.dumps({"type": "ping"}))
        try:
            async for frame in ws:
                assert isinstance(frame, str), "protocol frames are text frames"
                frames.append(json.loads(frame))
        except websockets.ConnectionClosed:
            pass


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    out = []
    for f in frames:
        kind = f["type"]
        if kind == "invokefunction":
            kind += ":" + f["function_id"]
        out.append(kind)
    return out


async def test_replay_order_and_fields_on_every_connection() -> None:
    recorder = Recorder()
    async with serve(recorder.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        worker = iii_worker.init(
            f"ws://127.0.0.1:{port}",
            name="vec-a",
            reconnect=ReconnectConfig(initial_delay=0.05),
        )

        class Provider:
            def register_trigger(self, trigger: Any) -> None: ...

            def unregister_trigger(self, trigger: Any) -> None: ...

        # registered in a scrambled order; the replay order is fixed
        worker.register_function("demo.keep", lambda data: data, description="survives reconnect")
        trigger = worker.register_trigger(
            "http", "demo.keep", {"api_path": "keep", "http_method": "POST"}
        )
        worker.register_trigger_type("demo-webhook", "Demo webhook trigger type", Provider())
        await worker.connect()
        try:
            expected = [
                "pong",
                "registertriggertype",
                "registerfunction",
                "registertrigger",
                "invokefunction:engine::workers::register",
            ]
            await wait_until(lambda: len(recorder.conns[0]) >= 5, 5, "replay")
            first = recorder.conns[0]
            assert sorted(kinds(first)) == sorted(expected)
            assert [k for k in kinds(first) if k != "pong"] == expected[1:]
            by_type = {f["type"]: f for f in first}
            assert by_type["registertriggertype"] == {
                "type": "registertriggertype",
                "id": "demo-webhook",
                "description": "Demo webhook trigger type",
            }
            # absent optional fields are left out, as the published SDKs do
            assert by_type["registerfunction"] == {
                "type": "registerfunction",
                "id": "demo.keep",
                "description": "survives reconnect",
            }
            assert by_type["registertrigger"] == {
                "type": "registertrigger",
                "id": trigger.id,
                "trigger_type": "http",
                "function_id": "demo.keep",
                "config": {"api_path": "keep", "http_method": "POST"},
            }
            register = next(f for f in first if f.get("function_id") == "engine::workers::register")
            assert "invocation_id" not in register  # fire-and-forget
            assert {"runtime", "version", "name", "os", "pid"} <= register["data"].keys()
            assert register["data"]["name"] == "vec-a"

            # a clean close from the server: the worker reconnects and replays the same set,
            # then the call queued while offline, then engine::workers::register
            await recorder.sockets[0].close(1000)
            await wait_until(lambda: not worker.connected, 5, "close noticed")
            await worker.call_void("demo.after", {"queued": True})
            await wait_until(lambda: len(recorder.conns) == 2 and len(recorder.conns[1]) >= 6, 10)
            second = [k for k in kinds(recorder.conns[1]) if k != "pong"]
            assert second == [
                "registertriggertype",
                "registerfunction",
                "registertrigger",
                "invokefunction:demo.after",
                "invokefunction:engine::workers::register",
            ]
            assert worker.connected
        finally:
            await worker.close()
