"""The seed document's trace: ``HTTP POST /users → users.create → users.validate, users.store →
database.insert`` as one trace, across the HTTP module, the engine, a worker on this repo's SDK
and a worker on the published Python ``iii-sdk`` with its OTel on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import iii_worker
from iii_otel.module import OtelModule
from iii_rest import RestApiModule

from iii_core.testing import published_python_sdk, subprocess_worker, wait_until

STORE_WORKER = Path(__file__).resolve().parent / "workers" / "users_store_worker.py"
CONFIG = {
    "modules": [
        {"class": "modules::rest_api::RestApiModule", "config": {"port": 0}},
        {"class": "modules::observability::OtelModule", "config": {"prometheus_port": 0}},
    ]
}


def _child(node: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in node["children"] if c["name"] == name]
    names = [c["name"] for c in node["children"]]
    assert len(matches) == 1, f"{node['name']!r} should have one child {name!r}, has {names}"
    return matches[0]


async def test_http_request_through_two_workers_is_one_trace(engine_factory: Any) -> None:
    python = published_python_sdk("0.25.0")
    async with engine_factory(CONFIG) as engine:
        rest = next(m for m in engine.modules if isinstance(m, RestApiModule))
        otel = next(m for m in engine.modules if isinstance(m, OtelModule))
        url = f"ws://127.0.0.1:{engine.port}"
        env = {"III_URL": url, "OTEL_ENABLED": "true"}
        with subprocess_worker([python, str(STORE_WORKER)], env=env):
            async with iii_worker.connect(url, name="users-api") as api:

                async def validate(data: Any) -> Any:
                    return {"valid": "@" in data["email"]}

                async def create(request: Any) -> Any:
                    user = request["body"]
                    await api.call("users.validate", user)
                    stored = await api.call("users.store", user)
                    return {"status_code": 201, "body": {"id": stored["id"]}}

                api.register_function("users.validate", validate)
                api.register_function("users.create", create)
                api.register_trigger(
                    "http", "users.create", {"api_path": "users", "http_method": "POST"}
                )
                wanted = {"users.create", "users.validate", "users.store", "database.insert"}
                await wait_until(
                    lambda: (
                        wanted <= {e.id for e in engine.functions}
                        and any(t.active for t in engine.triggers)
                    ),
                    60,
                    "both workers to register",
                )
                async with httpx.AsyncClient() as client:
                    response = await client.post(
                        f"http://127.0.0.1:{rest.port}/users", json={"email": "ada@example.com"}
                    )
                assert response.status_code == 201
                assert response.json() == {"id": 42}

                assert otel.spans is not None
                roots = [s for s in otel.spans.records() if s["name"] == "POST users"]
                assert len(roots) == 1, [s["name"] for s in otel.spans.records()]
                trace_id = roots[0]["trace_id"]

                def names() -> set[str]:
                    assert otel.spans is not None
                    return {s["name"] for s in otel.spans.records() if s["trace_id"] == trace_id}

                # The SDK exports spans in batches as they end: a child can arrive
                # before its parent, so wait for both of the worker's spans.
                await wait_until(
                    lambda: {"execute database.insert", "execute users.store"} <= names(),
                    30,
                    "the published SDK's spans to arrive as OTLP frames",
                )
                tree = await api.call("engine::traces::tree", {"trace_id": trace_id})

    assert [r["name"] for r in tree["roots"]] == ["POST users"], tree["roots"]
    create = _child(tree["roots"][0], "call users.create")
    _child(create, "call users.validate")
    store = _child(_child(create, "call users.store"), "execute users.store")
    assert store["service_name"] == "users-store"
    insert = _child(_child(store, "call database.insert"), "execute database.insert")
    assert insert["service_name"] == "users-store"
