"""The benchmark's minimal relay: the ceiling the engine is compared with.

It speaks just enough of the protocol to relay calls: ``workerregistered`` on connect, remembers
which socket registered which function, forwards ``invokefunction`` to it unchanged and forwards
``invocationresult`` back to the socket that sent the call, by invocation id.  It uses the same
WebSocket server library (aiohttp) and loop (uvloop) as the engine, so the ratio engine/relay
measures the engine's own overhead.

    python relay.py <port>
"""

from __future__ import annotations

import sys
import uuid

import msgspec
import uvloop
from aiohttp import WSMsgType, web

_decode = msgspec.json.Decoder().decode
owners: dict[str, web.WebSocketResponse] = {}
callers: dict[str, web.WebSocketResponse] = {}


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=64 * 1024 * 1024, decode_text=False)
    await ws.prepare(request)
    await ws.send_str(
        msgspec.json.encode({"type": "workerregistered", "worker_id": str(uuid.uuid4())}).decode()
    )
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        data = msg.data
        parsed = _decode(data)
        kind = parsed.get("type")
        if kind == "invokefunction":
            owner = owners.get(parsed["function_id"])
            invocation_id = parsed.get("invocation_id")
            if owner is None or invocation_id is None:
                continue  # e.g. the SDKs' fire-and-forget engine::workers::register
            callers[invocation_id] = ws
            await owner.send_frame(data, WSMsgType.TEXT)
        elif kind == "invocationresult":
            caller = callers.pop(parsed["invocation_id"], None)
            if caller is not None:
                await caller.send_frame(data, WSMsgType.TEXT)
        elif kind == "registerfunction":
            owners[parsed["id"]] = ws
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/", handle)
    uvloop.run(
        web._run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, handle_signals=True)
    )


if __name__ == "__main__":
    main()
