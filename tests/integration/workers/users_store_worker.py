"""Worker 2 of the seed document's trace, on the published ``iii-sdk`` 0.25 with OTel on:
``users.store`` calls ``database.insert``; both go through the engine."""

import os
import time

from iii import InitOptions, register_worker

worker = register_worker(
    os.environ["III_URL"],
    InitOptions(worker_name="users-store", otel={"enabled": True, "service_name": "users-store"}),
)


async def users_store(data):
    return await worker.trigger_async(
        {"function_id": "database.insert", "payload": {"row": data}, "dispatch": "remote"}
    )


async def database_insert(data):
    return {"id": 42}


worker.register_function("users.store", users_store, local_dispatch=False)
worker.register_function("database.insert", database_insert, local_dispatch=False)
print("ready", flush=True)
while True:
    time.sleep(1)
