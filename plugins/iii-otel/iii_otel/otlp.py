"""OTLP/JSON in and out: decoding worker frames, encoding engine spans, JSON to protobuf.

The SDKs send OTLP in its JSON encoding with lowercase-hex trace and span ids (reference §3.5).
Decoding is tolerant: a field of the wrong type is skipped, never fatal, so one odd SDK cannot
break ingestion for the others.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, cast

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

if TYPE_CHECKING:
    from google.protobuf.message import Message  # type: ignore[import-untyped]
    from opentelemetry.trace import SpanContext

KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")
_KIND_FROM_SDK = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_STATUS_NAMES = ("unset", "ok", "error")
_ZERO_IDS = frozenset({"", "0" * 16, "0" * 32})


def any_value(value: Any) -> Any:
    """Decode an OTLP ``AnyValue`` mapping into a plain JSON value."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        values = (
            value["arrayValue"].get("values") if isinstance(value["arrayValue"], dict) else None
        )
        return [any_value(v) for v in values or []]
    if "kvlistValue" in value:
        kv = value["kvlistValue"]
        return attributes(kv.get("values") if isinstance(kv, dict) else None)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    """Decode an OTLP ``KeyValue`` list into a mapping (entries without a key are skipped)."""
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                out[item["key"]] = any_value(item.get("value"))
    return out


def to_any_value(value: Any) -> dict[str, Any]:
    """Encode a plain value as an OTLP ``AnyValue``."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [to_any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": to_attributes(value)}}
    return {"stringValue": "" if value is None else str(value)}


def to_attributes(values: Any) -> list[dict[str, Any]]:
    if not values:
        return []
    return [{"key": str(k), "value": to_any_value(v)} for k, v in dict(values).items()]


def nanos(value: Any) -> int:
    """OTLP timestamps are uint64 sent as strings (or numbers); anything else reads as 0."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def norm_id(value: Any) -> str | None:
    """A trace or span id as lowercase hex; empty or all-zero ids mean "none"."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    return None if value in _ZERO_IDS else value


def _kind(value: Any) -> str:
    if isinstance(value, int) and 0 <= value < len(KIND_NAMES):
        return KIND_NAMES[value]
    if isinstance(value, str):
        name = value.removeprefix("SPAN_KIND_").lower()
        if name in KIND_NAMES:
            return name
    return "unspecified"


def _status(value: Any) -> tuple[str, str | None]:
    if not isinstance(value, dict):
        return "unset", None
    code = value.get("code", 0)
    if isinstance(code, str):
        name = code.removeprefix("STATUS_CODE_").lower()
    elif isinstance(code, int) and 0 <= code < len(_STATUS_NAMES):
        name = _STATUS_NAMES[code]
    else:
        name = "unset"
    message = value.get("message") or None
    return (name if name in _STATUS_NAMES else "unset"), message


def _duration_ms(start: int, end: int) -> float:
    return round((end - start) / 1e6, 3) if end >= start > 0 else 0.0


def spans_from_request(payload: Any, worker_id: str | None) -> list[dict[str, Any]]:
    """Stored-span records of an ``ExportTraceServiceRequest`` (JSON) sent by a worker."""
    out: list[dict[str, Any]] = []
    for rs in _list(payload, "resourceSpans"):
        resource = attributes(_get(rs, "resource", "attributes"))
        service = str(resource.get("service.name", "unknown"))
        for ss in _list(rs, "scopeSpans"):
            scope_value = ss.get("scope")
            scope = scope_value if isinstance(scope_value, dict) else {}
            for span in _list(ss, "spans"):
                trace_id = norm_id(span.get("traceId"))
                span_id = norm_id(span.get("spanId"))
                if trace_id is None or span_id is None:
                    continue
                start = nanos(span.get("startTimeUnixNano"))
                end = nanos(span.get("endTimeUnixNano"))
                status, description = _status(span.get("status"))
                out.append(
                    {
                        "trace_id": trace_id,
                        "span_id": span_id,
                        "parent_span_id": norm_id(span.get("parentSpanId")),
                        "name": str(span.get("name", "")),
                        "kind": _kind(span.get("kind")),
                        "start_time_unix_nano": start,
                        "end_time_unix_nano": end,
                        "duration_ms": _duration_ms(start, end),
                        "status": status,
                        "status_description": description,
                        "attributes": attributes(span.get("attributes")),
                        "events": [
                            {
                                "name": str(ev.get("name", "")),
                                "time_unix_nano": nanos(ev.get("timeUnixNano")),
                                "attributes": attributes(ev.get("attributes")),
                            }
                            for ev in _list(span, "events")
                        ],
                        "service_name": service,
                        "scope_name": str(scope.get("name", "")),
                        "source": "worker",
                        "worker_id": worker_id,
                    }
                )
    return out


def span_record(span: ReadableSpan, worker_id: str | None = None) -> dict[str, Any]:
    """Stored-span record of a span the engine itself produced (OTel SDK ``ReadableSpan``)."""
    ctx = cast("SpanContext", span.get_span_context())  # always set on an SDK span
    parent = span.parent
    start = span.start_time or 0
    end = span.end_time or 0
    status = span.status
    attrs = dict(span.attributes or {})
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name,
        "kind": KIND_NAMES[_KIND_FROM_SDK.get(span.kind, 0)],
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": _duration_ms(start, end),
        "status": _STATUS_NAMES[
            {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[status.status_code]
        ],
        "status_description": status.description,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()},
        "events": [
            {
                "name": ev.name,
                "time_unix_nano": ev.timestamp,
                "attributes": dict(ev.attributes or {}),
            }
            for ev in span.events
        ],
        "service_name": str(span.resource.attributes.get("service.name", "iii")),
        "scope_name": span.instrumentation_scope.name if span.instrumentation_scope else "",
        "source": "engine",
        "worker_id": worker_id,
    }


def resource_spans(records: list[dict[str, Any]], resource: dict[str, Any]) -> dict[str, Any]:
    """One OTLP/JSON ``ResourceSpans`` holding stored-span records (for export)."""
    spans = []
    for r in records:
        span: dict[str, Any] = {
            "traceId": r["trace_id"],
            "spanId": r["span_id"],
            "name": r["name"],
            "kind": KIND_NAMES.index(r["kind"]),
            "startTimeUnixNano": str(r["start_time_unix_nano"]),
            "endTimeUnixNano": str(r["end_time_unix_nano"]),
            "attributes": to_attributes(r["attributes"]),
            "events": [
                {
                    "name": ev["name"],
                    "timeUnixNano": str(ev["time_unix_nano"]),
                    "attributes": to_attributes(ev["attributes"]),
                }
                for ev in r["events"]
            ],
            "status": {
                "code": _STATUS_NAMES.index(r["status"]),
                "message": r["status_description"] or "",
            },
        }
        if r["parent_span_id"]:
            span["parentSpanId"] = r["parent_span_id"]
        spans.append(span)
    return {
        "resource": {"attributes": to_attributes(resource)},
        "scopeSpans": [{"scope": {"name": "iii"}, "spans": spans}],
    }


def resource_logs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OTLP/JSON ``ResourceLogs`` for stored log records (grouped by their resource)."""
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for r in records:
        resource = r.get("resource") or {}
        key = repr(sorted(resource.items()))
        entry: dict[str, Any] = {
            "timeUnixNano": str(r["timestamp_unix_nano"]),
            "observedTimeUnixNano": str(r["observed_timestamp_unix_nano"]),
            "severityNumber": r["severity_number"],
            "severityText": r["severity_text"],
            "body": to_any_value(r["body"]),
            "attributes": to_attributes(r["attributes"]),
        }
        if r.get("trace_id"):
            entry["traceId"] = r["trace_id"]
        if r.get("span_id"):
            entry["spanId"] = r["span_id"]
        groups.setdefault(key, (resource, []))[1].append(entry)
    return [
        {
            "resource": {"attributes": to_attributes(resource)},
            "scopeLogs": [{"scope": {"name": "iii"}, "logRecords": entries}],
        }
        for resource, entries in groups.values()
    ]


def logs_from_request(payload: Any) -> list[dict[str, Any]]:
    """Stored log records (the ``log`` trigger's payload) of an ``ExportLogsServiceRequest``."""
    out: list[dict[str, Any]] = []
    for rl in _list(payload, "resourceLogs"):
        resource = attributes(_get(rl, "resource", "attributes"))
        service = str(resource.get("service.name", "unknown"))
        for sl in _list(rl, "scopeLogs"):
            scope_value = sl.get("scope")
            scope = scope_value if isinstance(scope_value, dict) else {}
            for rec in _list(sl, "logRecords"):
                ts = nanos(rec.get("timeUnixNano"))
                observed = nanos(rec.get("observedTimeUnixNano")) or ts or time.time_ns()
                number = rec.get("severityNumber", 0)
                if isinstance(number, str):
                    number = _SEVERITY_NAMES.get(number.removeprefix("SEVERITY_NUMBER_"), 0)
                out.append(
                    {
                        "timestamp_unix_nano": ts or observed,
                        "observed_timestamp_unix_nano": observed,
                        "severity_number": number if isinstance(number, int) else 0,
                        "severity_text": str(rec.get("severityText") or "")
                        or severity_text(number if isinstance(number, int) else 0),
                        "body": any_value(rec.get("body")),
                        "attributes": attributes(rec.get("attributes")),
                        "trace_id": norm_id(rec.get("traceId")),
                        "span_id": norm_id(rec.get("spanId")),
                        "resource": resource,
                        "service_name": service,
                        "instrumentation_scope_name": str(scope.get("name") or "") or None,
                        "instrumentation_scope_version": str(scope.get("version") or "") or None,
                    }
                )
    return out


_SEVERITY_NAMES = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}


def severity_text(number: int) -> str:
    """OTel severity number → text (1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR)."""
    for name, low in reversed(_SEVERITY_NAMES.items()):
        if number >= low:
            return name
    return "UNSPECIFIED"


def metric_points(payload: Any) -> list[dict[str, Any]]:
    """Flatten an ``ExportMetricsServiceRequest`` into one record per data point."""
    out: list[dict[str, Any]] = []
    for rm in _list(payload, "resourceMetrics"):
        resource = attributes(_get(rm, "resource", "attributes"))
        service = str(resource.get("service.name", "unknown"))
        for sm in _list(rm, "scopeMetrics"):
            for metric in _list(sm, "metrics"):
                name = metric.get("name")
                if not isinstance(name, str):
                    continue
                for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                    data = metric.get(kind)
                    if isinstance(data, dict):
                        break
                else:
                    continue
                for dp in _list(data, "dataPoints"):
                    record: dict[str, Any] = {
                        "name": name,
                        "description": metric.get("description") or "",
                        "unit": metric.get("unit") or "",
                        "type": kind,
                        "attributes": attributes(dp.get("attributes")),
                        "timestamp_unix_nano": nanos(dp.get("timeUnixNano")),
                        "service_name": service,
                    }
                    if "asDouble" in dp:
                        record["value"] = _number(dp["asDouble"])
                    elif "asInt" in dp:
                        record["value"] = _number(dp["asInt"])
                    else:
                        record["count"] = nanos(dp.get("count"))
                        record["sum"] = _number(dp.get("sum", 0))
                    out.append(record)
    return out


def _number(value: Any) -> float | int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


def _list(obj: Any, key: str) -> list[dict[str, Any]]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


# ---------------------------------------------------------------------- JSON → protobuf

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def _ids_to_base64(obj: Any) -> Any:
    """Protobuf's JSON mapping wants ``bytes`` as base64; OTLP/JSON sends hex ids."""
    if isinstance(obj, list):
        return [_ids_to_base64(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if key in _ID_KEYS and isinstance(value, str):
            try:
                out[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                out[key] = ""  # not hex: export the span without that id rather than fail
        else:
            out[key] = _ids_to_base64(value)
    return out


def to_protobuf(signal: str, items: list[dict[str, Any]]) -> bytes:
    """Serialise ``resourceSpans`` / ``resourceLogs`` / ``resourceMetrics`` items as the
    protobuf ``Export*ServiceRequest`` of ``signal`` (``traces``, ``logs`` or ``metrics``)."""
    from google.protobuf import json_format  # type: ignore[import-untyped]

    Request: type[Message]
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest as Request,
        )

        key = "resourceSpans"
    elif signal == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest as Request,
        )

        key = "resourceLogs"
    else:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest as Request,
        )

        key = "resourceMetrics"
    message = json_format.ParseDict(
        {key: _ids_to_base64(items)}, Request(), ignore_unknown_fields=True
    )
    return bytes(message.SerializeToString())
