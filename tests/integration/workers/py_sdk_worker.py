"""A worker written with the published Python ``iii-sdk`` (0.10 and 0.25 share this API).

    python py_sdk_worker.py <engine-url> <prefix>

Registers <prefix>.add, .fail, .slow, .relay (calls another function), .void (fire-and-forget
call) and .record (appends its input to $RECORD_FILE), then prints "ready".
"""

import asyncio
import json
import os
import sys
import time

from iii import InitOptions, TriggerAction, register_worker

url, prefix = sys.argv[1], sys.argv[2]
iii = register_worker(url, InitOptions(worker_name=prefix))


async def add(data):
    return {"sum": data["a"] + data["b"]}


async def fail(data):
    raise ValueError("boom: bad input")


async def slow(data):
    await asyncio.sleep(data.get("seconds", 60))
    return "done"


async def relay(data):
    try:
        result = await iii.trigger_async(
            {"function_id": data["target"], "payload": data["data"], "timeout_ms": 15000}
        )
        return {"ok": result}
    except Exception as exc:
        return {"error": str(exc), "code": getattr(exc, "code", None)}


async def void(data):
    await iii.trigger_async(
        {"function_id": data["target"], "payload": data["data"], "action": TriggerAction.Void()}
    )
    return "sent"


async def record(data):
    def append():
        with open(os.environ["RECORD_FILE"], "a") as f:
            f.write(json.dumps(data) + "\n")

    await asyncio.to_thread(append)
    return None


for name, handler in [
    ("add", add),
    ("fail", fail),
    ("slow", slow),
    ("relay", relay),
    ("void", void),
    ("record", record),
]:
    iii.register_function(f"{prefix}.{name}", handler)

print("ready", flush=True)
while True:
    time.sleep(1)
