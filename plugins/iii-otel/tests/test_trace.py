"""A real trace across the engine and two worker processes of the published Python SDK."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from otel_helpers import otel_config, otel_module

from iii_core.testing import published_python_sdk, subprocess_worker, wait_until

WORKER = os.path.join(os.path.dirname(__file__), "workers", "users_worker.py")


def _child(node: dict[str, Any], name: str) -> dict[str, Any]:
    names = [c["name"] for c in node["children"]]
    matches = [c for c in node["children"] if c["name"] == name]
    assert len(matches) == 1, f"{node['name']!r} should have one child {name!r}, has {names}"
    return matches[0]


async def test_one_trace_across_engine_and_two_published_sdk_workers(engine_factory):
    python = published_python_sdk("0.25.0")
    async with engine_factory(otel_config()) as engine:
        module = otel_module(engine)
        fired: list[dict[str, Any]] = []

        async def on_log(data: Any, ctx: Any) -> None:
            fired.append(data)

        engine.register_function("test.on_log", on_log)
        await engine.register_trigger("log", "test.on_log", {"level": "info"})
        env = {"III_URL": f"ws://127.0.0.1:{engine.port}", "OTEL_ENABLED": "true"}
        with (
            subprocess_worker([python, WORKER, "api"], env=env),
            subprocess_worker([python, WORKER, "db"], env=env),
        ):
            wanted = {"users.create", "users.store", "users.validate", "database.insert"}
            await wait_until(
                lambda: wanted <= {e.id for e in engine.functions}, 60, "workers to register"
            )
            tracer = trace.get_tracer("iii.test.http")
            with tracer.start_as_current_span("HTTP POST /users", kind=SpanKind.SERVER) as entry:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                result = await engine.call(
                    "users.create", {"email": "ada@example.com"}, traceparent=carrier["traceparent"]
                )
            assert result == {"created": 42}
            trace_id = format(entry.get_span_context().trace_id, "032x")

            def spans_of(service: str) -> list[str]:
                assert module.spans is not None
                return [
                    s["name"]
                    for s in module.spans.records()
                    if s["trace_id"] == trace_id and s["service_name"] == service
                ]

            await wait_until(
                lambda: (
                    "execute database.insert" in spans_of("users-db")
                    and "execute users.create" in spans_of("users-api")
                ),
                30,
                "worker spans to arrive as OTLP frames",
            )
            tree = await engine.call("engine::traces::tree", {"trace_id": trace_id})
            # The SDK logger's record (a LOGS frame) carries the trace and fires the log trigger.
            await wait_until(
                lambda: any(r["body"] == "validating user" for r in fired), 30, "the SDK log"
            )
            sdk_log = next(r for r in fired if r["body"] == "validating user")
            assert sdk_log["trace_id"] == trace_id
            assert sdk_log["service_name"] == "users-db"
            assert sdk_log["severity_text"] == "INFO"
            assert "ada@example.com" in str(sdk_log["attributes"]), sdk_log
            listed = await engine.call("engine::logs::list", {"trace_id": trace_id})
            assert [r["body"] for r in listed["logs"]] == ["validating user"]

    assert [r["name"] for r in tree["roots"]] == ["HTTP POST /users"], tree["roots"]
    root = tree["roots"][0]
    create = _child(_child(root, "call users.create"), "execute users.create")
    assert create["service_name"] == "users-api" and create["source"] == "worker"
    validate = _child(_child(create, "call users.validate"), "execute users.validate")
    assert validate["service_name"] == "users-db"
    store = _child(_child(create, "call users.store"), "execute users.store")
    assert store["service_name"] == "users-api"
    insert_call = _child(store, "call database.insert")
    assert insert_call["service_name"] == "iii" and insert_call["source"] == "engine"
    insert = _child(insert_call, "execute database.insert")
    assert insert["service_name"] == "users-db"
    services = set()

    def walk(node: dict[str, Any]) -> None:
        services.add(node["service_name"])
        assert node["trace_id"] == trace_id
        for child in node["children"]:
            walk(child)

    walk(root)
    assert services == {"iii", "users-api", "users-db"}
