"""A bare-protocol worker process for fault tests (killed with SIGKILL at random).

    python load_worker.py <engine-url>

Serves ``fault.echo`` (answers after a short random delay) and keeps calling ``fault.echo``
itself, so that calls cross between worker processes while they are being killed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid

import websockets


async def main(url: str) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()  # workerregistered
        await ws.send(json.dumps({"type": "registerfunction", "id": "fault.echo"}))

        async def serve(msg: dict) -> None:
            await asyncio.sleep(random.uniform(0, 0.05))
            await ws.send(
                json.dumps(
                    {
                        "type": "invocationresult",
                        "invocation_id": msg["invocation_id"],
                        "function_id": msg["function_id"],
                        "result": msg["data"],
                    }
                )
            )

        async def call_forever() -> None:
            while True:
                await ws.send(
                    json.dumps(
                        {
                            "type": "invokefunction",
                            "invocation_id": str(uuid.uuid4()),
                            "function_id": "fault.echo",
                            "data": {"from": "peer"},
                            "timeout_ms": 3000,
                        }
                    )
                )
                await asyncio.sleep(0.01)

        caller = asyncio.ensure_future(call_forever())
        serving: set[asyncio.Future[None]] = set()
        print("ready", flush=True)
        async for frame in ws:
            msg = json.loads(frame)
            if msg.get("type") == "invokefunction":
                task = asyncio.ensure_future(serve(msg))
                serving.add(task)
                task.add_done_callback(serving.discard)
        caller.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
