"""A worker of the seed document's example, run with the published ``iii-sdk`` 0.25 (OTel on).

``python users_worker.py api``: ``users.create`` (calls ``users.validate`` then ``users.store``)
and ``users.store`` (calls ``database.insert``).  ``python users_worker.py db``:
``users.validate`` (logs through the SDK's OTel logger) and ``database.insert``.  Every call
goes through the engine (``dispatch: remote``), so each hop crosses a process boundary.
"""

import os
import sys
import time

from iii import InitOptions, register_worker
from iii_helpers.observability.logger import Logger

role = sys.argv[1]
worker = register_worker(
    os.environ["III_URL"],
    InitOptions(
        worker_name=f"users-{role}",
        otel={"enabled": True, "service_name": f"users-{role}", "metrics_export_interval_ms": 1000},
    ),
)


async def call(function_id, payload):
    return await worker.trigger_async(
        {"function_id": function_id, "payload": payload, "dispatch": "remote"}
    )


async def users_create(data):
    await call("users.validate", data)
    stored = await call("users.store", data)
    return {"created": stored["id"]}


async def users_store(data):
    return await call("database.insert", {"table": "users", "row": data})


async def users_validate(data):
    Logger().info("validating user", {"email": data.get("email")})
    if not data.get("email"):
        raise ValueError("email is required")
    return {"valid": True}


async def database_insert(data):
    return {"id": 42, "table": data["table"]}


if role == "api":
    worker.register_function("users.create", users_create, local_dispatch=False)
    worker.register_function("users.store", users_store, local_dispatch=False)
else:
    worker.register_function("users.validate", users_validate, local_dispatch=False)
    worker.register_function("database.insert", database_insert, local_dispatch=False)

while True:
    time.sleep(1)
