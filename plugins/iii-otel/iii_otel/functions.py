"""The functions OtelModule registers (reference §5.11).

``engine::traces::{list,tree,clear}``, ``engine::logs::{list,clear}``, ``engine::log::*``,
``engine::metrics::list``, ``engine::health::check``, ``engine::baggage::{get,set,get_all}``,
``engine::sampling::rules``, ``engine::alerts::{list,evaluate}`` and ``engine::rollups::list``.
Times in filters (``start_time``, ``end_time``) are unix milliseconds.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from iii_core import CallContext, InvocationError
from iii_core.errors import DeserializationError
from iii_otel.logs import SEVERITY
from iii_otel.rollups import parse_query

if TYPE_CHECKING:
    from iii_otel.module import OtelModule

VERSION = "0.1.0"
_MS = 1_000_000


def _args(function_id: str, data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeserializationError(
            f"Failed to deserialize input for {function_id}: expected an object, "
            f"got {type(data).__name__}"
        )
    return {k: v for k, v in data.items() if k != "_caller_worker_id"}


def _int(args: dict[str, Any], key: str, default: int | None, function_id: str) -> int | None:
    value = args.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise DeserializationError(
            f"Failed to deserialize input for {function_id}: {key} must be a non-negative "
            f"number, got {value!r}"
        )
    return int(value)


def parse_baggage(header: str | None) -> dict[str, str]:
    """W3C ``baggage`` header → mapping (properties after ``;`` are dropped)."""
    out: dict[str, str] = {}
    for member in (header or "").split(","):
        key, sep, value = member.split(";", 1)[0].partition("=")
        if sep and key.strip():
            out[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return out


def format_baggage(values: dict[str, str]) -> str:
    return ",".join(
        f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(str(v), safe='')}"
        for k, v in values.items()
    )


class OtelFunctions:
    def __init__(self, module: OtelModule) -> None:
        self.module = module

    def register(self) -> None:
        reg = self.module.engine.register_function
        reg("engine::traces::list", self.traces_list, description="List stored spans")
        reg("engine::traces::tree", self.traces_tree, description="One trace as a span tree")
        reg("engine::traces::clear", self.traces_clear, description="Clear the span store")
        reg("engine::logs::list", self.logs_list, description="List stored log records")
        reg("engine::logs::clear", self.logs_clear, description="Clear the log store")
        for level in SEVERITY:
            reg(
                f"engine::log::{level}",
                self._log_function(level),
                description=f"Store a {level} log record and fire log triggers",
            )
        reg("engine::metrics::list", self.metrics_list, description="Engine and worker metrics")
        reg("engine::health::check", self.health_check, description="Observability health")
        reg("engine::baggage::get", self.baggage_get, description="Read one baggage entry")
        reg("engine::baggage::set", self.baggage_set, description="Add a baggage entry")
        reg("engine::baggage::get_all", self.baggage_get_all, description="All baggage entries")
        reg("engine::sampling::rules", self.sampling_rules, description="Effective trace sampling")
        reg("engine::alerts::list", self.alerts_list, description="Alert states")
        reg("engine::alerts::evaluate", self.alerts_evaluate, description="Evaluate alerts now")
        reg("engine::rollups::list", self.rollups_list, description="Metric rollups")

    # ------------------------------------------------------------------ traces

    def _span_store(self) -> Any:
        if self.module.spans is None:
            raise InvocationError(
                "the in-memory span store is off (set exporter: memory or both, and enabled: "
                "true, in the OtelModule config)",
                code="memory_exporter_not_enabled",
            )
        return self.module.spans

    async def traces_list(self, data: Any, ctx: CallContext) -> Any:
        fid = "engine::traces::list"
        args = _args(fid, data)
        offset = _int(args, "offset", 0, fid) or 0
        limit = _int(args, "limit", 100, fid) or 100
        spans = self._span_store().records()
        spans = [s for s in spans if _span_matches(s, args, fid)]
        sort_by = args.get("sort_by", "start_time")
        key = {
            "start_time": lambda s: s["start_time_unix_nano"],
            "duration": lambda s: s["duration_ms"],
            "name": lambda s: s["name"],
        }.get(sort_by)
        if key is None:
            raise DeserializationError(
                f"{fid}: sort_by must be start_time, duration or name, got {sort_by!r}"
            )
        spans.sort(key=key, reverse=args.get("sort_order", "desc") != "asc")
        return {
            "spans": spans[offset : offset + limit],
            "total": len(spans),
            "offset": offset,
            "limit": limit,
        }

    async def traces_tree(self, data: Any, ctx: CallContext) -> Any:
        args = _args("engine::traces::tree", data)
        trace_id = args.get("trace_id")
        if not isinstance(trace_id, str) or not trace_id:
            raise DeserializationError("engine::traces::tree: trace_id (a string) is required")
        trace_id = trace_id.lower()
        spans = [s for s in self._span_store().records() if s["trace_id"] == trace_id]
        nodes = {s["span_id"]: {**s, "children": []} for s in spans}
        roots: list[dict[str, Any]] = []
        for node in sorted(nodes.values(), key=lambda n: n["start_time_unix_nano"]):
            parent = nodes.get(node["parent_span_id"] or "")
            (parent["children"] if parent is not None else roots).append(node)
        return {"trace_id": trace_id, "span_count": len(nodes), "roots": roots}

    async def traces_clear(self, data: Any, ctx: CallContext) -> Any:
        self._span_store().clear()
        return {"success": True}

    # ------------------------------------------------------------------ logs

    def _log_store(self) -> Any:
        if self.module.logs is None:
            raise InvocationError(
                "the log store is off (logs_enabled: false)", code="logs_not_enabled"
            )
        return self.module.logs

    async def logs_list(self, data: Any, ctx: CallContext) -> Any:
        fid = "engine::logs::list"
        args = _args(fid, data)
        offset = _int(args, "offset", 0, fid) or 0
        limit = _int(args, "limit", 100, fid) or 100
        start = _int(args, "start_time", None, fid)
        end = _int(args, "end_time", None, fid)
        severity_min = _int(args, "severity_min", None, fid)
        text = args.get("severity_text")
        out = []
        for r in self._log_store().store.records():
            ts = r["timestamp_unix_nano"]
            if start is not None and ts < start * _MS:
                continue
            if end is not None and ts > end * _MS:
                continue
            if args.get("trace_id") and r.get("trace_id") != str(args["trace_id"]).lower():
                continue
            if args.get("span_id") and r.get("span_id") != str(args["span_id"]).lower():
                continue
            if severity_min is not None and r["severity_number"] < severity_min:
                continue
            if text and str(r["severity_text"]).lower() != str(text).lower():
                continue
            out.append(r)
        out.reverse()  # newest first
        return {
            "logs": out[offset : offset + limit],
            "total": len(out),
            "query": args,
            "timestamp": int(time.time() * 1000),
        }

    async def logs_clear(self, data: Any, ctx: CallContext) -> Any:
        self._log_store().store.clear()
        return {"success": True}

    def _log_function(self, level: str) -> Any:
        fid = f"engine::log::{level}"

        async def handler(data: Any, ctx: CallContext) -> Any:
            args = _args(fid, data)
            message = args.get("message")
            if not isinstance(message, str):
                raise DeserializationError(f"{fid}: message (a string) is required")
            payload = args.get("data")
            if isinstance(payload, dict):
                attributes = dict(payload)
            elif payload is None:
                attributes = {}
            else:
                attributes = {"data": payload}
            trace_id = args.get("trace_id")
            span_id = args.get("span_id")
            if trace_id is None and ctx.traceparent and len(ctx.traceparent) >= 55:
                trace_id, span_id = ctx.traceparent[3:35], ctx.traceparent[36:52]
            pipeline = self._log_store()
            record = pipeline.record(
                level,
                message,
                attributes,
                trace_id=trace_id,
                span_id=span_id,
                service_name=args.get("service_name"),
            )
            if self.module.settings.logs_console_output:
                pipeline.echo(level, message, payload)
            pipeline.add(record, export=True)
            return None

        return handler

    # ------------------------------------------------------------------ metrics and health

    async def metrics_list(self, data: Any, ctx: CallContext) -> Any:
        fid = "engine::metrics::list"
        args = _args(fid, data)
        module = self.module
        stats = module.stats
        obs = module.observer
        start = _int(args, "start_time", None, fid)
        end = _int(args, "end_time", None, fid)
        name = args.get("metric_name")
        sdk: list[dict[str, Any]] = []
        if module.metrics is not None:
            for point in module.metrics.records():
                ts = point["timestamp_unix_nano"]
                if start is not None and ts < start * _MS:
                    continue
                if end is not None and ts > end * _MS:
                    continue
                if name and point["name"] != name:
                    continue
                sdk.append(point)
        return {
            "engine_metrics": {
                "invocations": {
                    "total": stats.total,
                    "success": stats.success,
                    "error": stats.error,
                    "deferred": 0,
                    "by_function": stats.by_function(),
                },
                "workers": {
                    "spawns": obs.spawns_total,
                    "deaths": obs.deaths_total,
                    "active": module.engine.workers.active_count(),
                },
                "performance": stats.performance(),
            },
            "sdk_metrics": sdk,
            "query": args,
            "timestamp": int(time.time() * 1000),
        }

    async def health_check(self, data: Any, ctx: CallContext) -> Any:
        module = self.module

        def component(on: bool, details: dict[str, Any]) -> dict[str, Any]:
            return {"status": "healthy" if on else "disabled", "details": details}

        forwarder = module.forwarder
        return {
            "status": "healthy",
            "components": {
                "otel": component(
                    module.settings.enabled,
                    {
                        "exporter": module.settings.exporter,
                        "endpoint": module.settings.endpoint if forwarder else None,
                        "sampling_ratio": module.settings.sampling.default,
                        "export_queued": forwarder.queued() if forwarder else 0,
                        "export_failed": dict(forwarder.failed_total) if forwarder else {},
                    },
                ),
                "metrics": component(
                    module.settings.metrics_enabled,
                    {
                        "stored": len(module.metrics) if module.metrics is not None else 0,
                        "prometheus_port": module.metrics_port,
                    },
                ),
                "logs": component(
                    module.logs is not None,
                    {"stored": len(module.logs.store) if module.logs is not None else 0},
                ),
                "spans": component(
                    module.spans is not None,
                    {"stored": len(module.spans) if module.spans is not None else 0},
                ),
            },
            "timestamp": int(time.time() * 1000),
            "version": VERSION,
        }

    # ------------------------------------------------------------------ sampling and alerts

    async def sampling_rules(self, data: Any, ctx: CallContext) -> Any:
        _args("engine::sampling::rules", data)
        return self.module.settings.sampling.as_dict()

    async def alerts_list(self, data: Any, ctx: CallContext) -> Any:
        _args("engine::alerts::list", data)
        alerts = self.module.alerts
        return {"alerts": alerts.list() if alerts is not None else []}

    async def alerts_evaluate(self, data: Any, ctx: CallContext) -> Any:
        _args("engine::alerts::evaluate", data)
        alerts = self.module.alerts
        return {"alerts": alerts.evaluate() if alerts is not None else []}

    async def rollups_list(self, data: Any, ctx: CallContext) -> Any:
        fid = "engine::rollups::list"
        query = parse_query(_args(fid, data), fid)
        rollups = self.module.rollups
        if rollups is None:
            raise InvocationError(
                "rollups are off (rollups_enabled: false in the OtelModule config)",
                code="rollups_not_enabled",
            )
        return {
            "rollups": rollups.list(query),
            "level": query.level,
            "query": query.as_dict(),
            "timestamp": int(time.time() * 1000),
        }

    # ------------------------------------------------------------------ baggage

    async def baggage_get(self, data: Any, ctx: CallContext) -> Any:
        args = _args("engine::baggage::get", data)
        key = args.get("key")
        if not isinstance(key, str):
            raise DeserializationError("engine::baggage::get: key (a string) is required")
        return {"key": key, "value": parse_baggage(ctx.baggage).get(key)}

    async def baggage_set(self, data: Any, ctx: CallContext) -> Any:
        args = _args("engine::baggage::set", data)
        key, value = args.get("key"), args.get("value")
        if not isinstance(key, str) or not key or value is None:
            raise DeserializationError(
                "engine::baggage::set: key (a non-empty string) and value are required"
            )
        values = parse_baggage(ctx.baggage)
        values[key] = str(value)
        return {"baggage": values, "header": format_baggage(values)}

    async def baggage_get_all(self, data: Any, ctx: CallContext) -> Any:
        _args("engine::baggage::get_all", data)
        return {"baggage": parse_baggage(ctx.baggage)}


def _span_matches(span: dict[str, Any], args: dict[str, Any], fid: str) -> bool:
    if not args.get("include_internal") and span["attributes"].get("iii.function.kind") == (
        "internal"
    ):
        return False
    if args.get("trace_id") and span["trace_id"] != str(args["trace_id"]).lower():
        return False
    if args.get("service_name") and span["service_name"] != args["service_name"]:
        return False
    if args.get("name") and str(args["name"]) not in span["name"]:
        return False
    if args.get("status") and span["status"] != str(args["status"]).lower():
        return False
    if args.get("min_duration_ms") is not None and span["duration_ms"] < args["min_duration_ms"]:
        return False
    if args.get("max_duration_ms") is not None and span["duration_ms"] > args["max_duration_ms"]:
        return False
    if args.get("start_time") is not None and span["start_time_unix_nano"] < (
        args["start_time"] * _MS
    ):
        return False
    if args.get("end_time") is not None and span["start_time_unix_nano"] > args["end_time"] * _MS:
        return False
    wanted = args.get("attributes")
    if wanted:
        if not isinstance(wanted, list):
            raise DeserializationError(f"{fid}: attributes must be a list of [key, value] pairs")
        for pair in wanted:
            if not isinstance(pair, list) or len(pair) != 2:
                raise DeserializationError(f"{fid}: attributes must be a list of [key, value]")
            if str(span["attributes"].get(pair[0])) != str(pair[1]):
                return False
    return True
