"""Worker telemetry frames: the published SDKs' real OTLP frames, MTRC and LOGS, bad frames."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import pytest
from otel_helpers import otel_config, otel_module

from iii_core.testing import protocol_vectors, raw_worker, wait_until

VECTORS = protocol_vectors()


def _vector_frames() -> list[tuple[str, str, dict[str, Any]]]:
    frames = []
    for path in sorted(glob.glob(os.path.join(VECTORS, "*", "otel-on", "*.jsonl"))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if record.get("prefix"):
                    name = os.path.relpath(path, VECTORS)
                    frames.append((name, record["prefix"], record["json"]))
    return frames


def _frame(prefix: str, doc: Any) -> bytes:
    return prefix.encode() + json.dumps(doc).encode()


def _span_count(doc: dict[str, Any]) -> int:
    return sum(
        len(ss.get("spans", [])) for rs in doc["resourceSpans"] for ss in rs.get("scopeSpans", [])
    )


async def test_every_published_sdk_vector_frame_is_ingested(engine_factory):
    frames = _vector_frames()
    if not frames:
        pytest.fail(f"no otel-on vector frames under {VECTORS} (set III_VECTORS)")
    sdks = {name.split("/")[0] for name, _, _ in frames}
    assert sdks == {"py-0.10.0", "py-0.25.0", "node-0.9.0", "node-0.22.1"}
    async with engine_factory(otel_config(memory_max_spans=10_000)) as engine:
        module = otel_module(engine)
        assert module.spans is not None and module.observer is not None
        expected = sum(_span_count(doc) for _, prefix, doc in frames if prefix == "OTLP")
        async with raw_worker(engine, "/otel") as tele:
            for _, prefix, doc in frames:
                await tele.send(_frame(prefix, doc))
            await wait_until(
                lambda: sum(module.observer.frames_total.values()) == len(frames),
                10,
                "every frame to be ingested",
            )
        assert module.observer.frames_rejected_total == 0
        assert len(module.spans) == expected
        listed = await engine.call("engine::traces::list", {"limit": 10_000})
        services = {s["service_name"] for s in listed["spans"]}
        assert {"iii-python-sdk", "iii-node"} <= services
        execute = [s for s in listed["spans"] if s["name"] == "execute demo.add"]
        assert execute and all(s["source"] == "worker" for s in execute)
        # A worker-side span with an error status keeps it.
        assert any(s["status"] == "error" for s in listed["spans"]), "handler_error vectors"
        # The telemetry socket is not counted as a worker.
        assert engine.workers.active_count() == 0


def _metrics_frame(worker_id: str, rss: int, cpu: float) -> dict[str, Any]:
    """An ``MTRC`` frame in the shape the Python SDK's serializer produces."""
    attrs = [{"key": "worker.id", "value": {"stringValue": worker_id}}]

    def gauge(name: str, value: dict[str, Any]) -> dict[str, Any]:
        point = {"attributes": attrs, "startTimeUnixNano": "0", "timeUnixNano": "1", **value}
        return {"name": name, "description": "", "unit": "", "gauge": {"dataPoints": [point]}}

    return {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeMetrics": [
                    {
                        "scope": {"name": "iii-python-sdk", "version": ""},
                        "metrics": [
                            gauge("iii.worker.memory.rss", {"asInt": str(rss)}),
                            gauge("iii.worker.cpu.percent", {"asDouble": cpu}),
                            gauge("iii.worker.uptime_seconds", {"asDouble": 12.5}),
                            gauge("app.custom", {"asInt": "7"}),
                        ],
                    }
                ],
            }
        ]
    }


async def test_worker_metrics_feed_workers_list(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        module = otel_module(engine)
        await w.call("engine::workers::register", {"runtime": "python", "name": "m"})
        # Metrics arrive on the SDK's separate telemetry socket, matched through worker.id.
        async with raw_worker(engine, "/otel") as tele:
            await tele.send(_frame("MTRC", _metrics_frame(w.worker_id, 1000, 1.5)))
            await tele.send(_frame("MTRC", _metrics_frame(w.worker_id, 2000, 3.0)))
            await wait_until(lambda: module.observer.frames_total["MTRC"] == 2, 10, "MTRC")
        workers = (await w.call("engine::workers::list", {}))["workers"]
        (info,) = [x for x in workers if x["id"] == w.worker_id]
        metrics = info["latest_metrics"]
        assert metrics["memory_rss"] == 2000
        assert metrics["cpu_percent"] == 3.0
        assert metrics["uptime_seconds"] == 12.5
        assert metrics["runtime"] == "python"
        assert isinstance(metrics["timestamp_ms"], int)
        listed = await w.call("engine::metrics::list", {"metric_name": "app.custom"})
        assert [p["value"] for p in listed["sdk_metrics"]] == [7, 7]
        assert listed["engine_metrics"]["workers"]["active"] == 1


async def test_logs_frames_fire_log_triggers_by_level(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        errors: list[Any] = []
        everything: list[Any] = []

        async def on_error(data: Any) -> None:
            errors.append(data)

        async def on_all(data: Any) -> None:
            everything.append(data)

        await w.register_function("test.errors", on_error)
        await w.register_function("test.all", on_all)
        await w.register_trigger("log", "test.errors", {"level": "error"})
        await w.register_trigger("log", "test.all", None)
        await wait_until(
            lambda: len(engine.triggers) == 2 and all(t.active for t in engine.triggers)
        )
        records = [
            {"timeUnixNano": "5", "severityNumber": 9, "severityText": "INFO",
             "body": {"stringValue": "hello"},
             "attributes": [{"key": "k", "value": {"intValue": "3"}}],
             "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"},
            {"timeUnixNano": "6", "severityNumber": 17, "severityText": "ERROR",
             "body": {"stringValue": "boom"}},
        ]  # fmt: skip
        doc = {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "w"}}]
                    },
                    "scopeLogs": [{"scope": {"name": "s", "version": "1"}, "logRecords": records}],
                }
            ]
        }
        await w.send(_frame("LOGS", doc))
        await wait_until(lambda: len(everything) == 2 and len(errors) == 1, 10, "log triggers")
        assert errors[0]["body"] == "boom" and errors[0]["severity_text"] == "ERROR"
        hello = next(r for r in everything if r["body"] == "hello")
        expected = {
            "timestamp_unix_nano": 5,
            "severity_number": 9,
            "severity_text": "INFO",
            "attributes": {"k": 3},
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "service_name": "w",
            "instrumentation_scope_name": "s",
            "instrumentation_scope_version": "1",
        }
        assert {k: hello[k] for k in expected} == expected
        assert set(hello) >= {"observed_timestamp_unix_nano", "resource", "body"}
        # A worker that registered functions is still a worker after sending telemetry.
        assert engine.workers.active_count() == 1


async def test_bad_telemetry_frames_are_dropped_and_counted(engine_factory):
    async with engine_factory(otel_config()) as engine, raw_worker(engine) as w:
        module = otel_module(engine)
        assert module.observer is not None
        await w.send(b"OTLP{not json")
        await w.send(b"MTRC[1, 2]")
        await w.send(b"LOGS\xff\xfe")
        await w.send(_frame("OTLP", {"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}))
        await wait_until(lambda: module.observer.frames_rejected_total == 3, 10, "rejections")
        # The connection and the engine still work.
        assert await w.call("engine::health::check", {}) is not None
        assert module.observer.frames_total["OTLP"] == 1
