"""OTLP/HTTP export to a local receiver, and a dead or hanging collector never slows calls."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_helpers import otel_config, otel_module

from iii_core.testing import free_port, local_http_server, raw_worker, wait_until

WORKER_SPAN = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "w1"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "iii-python-sdk"},
                    "spans": [
                        {
                            "traceId": "0af7651916cd43dd8448eb211c80319c",
                            "spanId": "b7ad6b7169203331",
                            "parentSpanId": "",
                            "name": "execute demo.remote",
                            "kind": 2,
                            "startTimeUnixNano": "1700000000000000000",
                            "endTimeUnixNano": "1700000000100000000",
                            "status": {"code": 1},
                        }
                    ],
                }
            ],
        }
    ]
}


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[tuple[str, dict[str, list[bytes]]]]:
    """A minimal OTLP/HTTP collector: records every POSTed protobuf body by signal."""
    received: dict[str, list[bytes]] = {"traces": [], "logs": [], "metrics": []}

    async def handle(request: web.Request) -> web.Response:
        assert request.headers["Content-Type"] == "application/x-protobuf"
        received[request.match_info["signal"]].append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/{signal}", handle)
    async with local_http_server(app) as base:
        yield base, received


def _span_names(bodies: list[bytes]) -> dict[str, str]:
    names = {}
    for body in bodies:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = next(
                a.value.string_value for a in rs.resource.attributes if a.key == "service.name"
            )
            for ss in rs.scope_spans:
                for span in ss.spans:
                    names[span.name] = service
    return names


async def test_traces_and_logs_reach_an_otlp_collector(engine_factory):
    async with otlp_receiver() as (endpoint, received):
        config = otel_config(
            exporter="both", logs_exporter="both", endpoint=endpoint, export_interval_ms=50
        )
        async with engine_factory(config) as engine, raw_worker(engine) as w:

            async def echo(data: Any) -> Any:
                return data

            await w.register_function("demo.echo", echo)
            await wait_until(lambda: engine.functions.get("demo.echo") is not None)
            await w.call("demo.echo", {})
            await w.send(b"OTLP" + json.dumps(WORKER_SPAN).encode())
            await w.call("engine::log::warn", {"message": "disk almost full", "data": {"pct": 91}})
            await wait_until(
                lambda: (
                    {"call demo.echo", "execute demo.remote"}
                    <= set(_span_names(received["traces"]))
                ),
                10,
                "engine and worker spans at the collector",
            )
            await wait_until(lambda: received["logs"], 10, "logs at the collector")
    names = _span_names(received["traces"])
    assert names["call demo.echo"] == "iii"
    assert names["execute demo.remote"] == "w1"
    bodies = []
    for raw in received["logs"]:
        for rl in ExportLogsServiceRequest.FromString(raw).resource_logs:
            for sl in rl.scope_logs:
                bodies.extend((r.body.string_value, r.severity_number) for r in sl.log_records)
    assert ("disk almost full", 13) in bodies


@asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """A collector that accepts connections and never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def _timed_calls(engine: Any, n: int) -> list[float]:
    async with raw_worker(engine) as w:

        async def echo(data: Any) -> Any:
            return data

        await w.register_function("demo.echo", echo)
        await wait_until(lambda: engine.functions.get("demo.echo") is not None)
        latencies = []
        for i in range(n):
            start = time.perf_counter()
            await w.call("demo.echo", {"i": i})
            latencies.append(time.perf_counter() - start)
        return latencies


async def test_a_hanging_or_dead_collector_does_not_slow_calls(engine_factory):
    async with black_hole() as hanging:
        for endpoint in (hanging, f"http://127.0.0.1:{free_port()}"):
            config = otel_config(
                exporter="both",
                logs_exporter="both",
                endpoint=endpoint,
                export_interval_ms=20,
                export_timeout_ms=300,
            )
            async with engine_factory(config) as engine:
                forwarder = otel_module(engine).forwarder
                assert forwarder is not None
                latencies = await _timed_calls(engine, 300)
                await wait_until(
                    lambda f=forwarder.failed_total: f["traces"] > 0, 10, "export failure"
                )
                assert forwarder.exported_total["traces"] == 0
                # A blocked export would hold the loop for the 300 ms export timeout every 20 ms,
                # so most calls would take >= 300 ms; the bounds leave room for a loaded machine.
                latencies.sort()
                assert latencies[len(latencies) // 2] < 0.1, (endpoint, latencies[-10:])
                assert latencies[int(len(latencies) * 0.9)] < 0.25, (endpoint, latencies[-10:])
