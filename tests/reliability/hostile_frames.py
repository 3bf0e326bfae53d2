"""Hypothesis strategies for hostile worker frames, shared by the sans-I/O and the live tests.

A frame is ``(kind, payload)``: ``kind`` is ``"text"`` or ``"binary"`` (the WebSocket opcode the
frame travels in) and ``payload`` the bytes.  The strategies aim at the decoder's edges: arbitrary
JSON, well-known message shapes with wrong types or missing fields, huge strings, deep nesting,
invalid UTF-8, and binary frames with and without a telemetry prefix.

Function ids in hostile frames never start with ``GOOD_PREFIX``, so the well-behaved workers'
functions cannot be taken over or called by the fuzzer (that is what auth is for).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from iii_core.protocol import KNOWN_TYPES, TELEMETRY_PREFIXES

GOOD_PREFIX = "rel-good-7f3a"
Frame = tuple[str, bytes]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

hostile_ids = (
    st.sampled_from(["h.fn", "h.other", "", " ", "engine::functions::list", "a::b::c"])
    | st.text(max_size=12)
).filter(lambda s: not s.startswith(GOOD_PREFIX))

FIELDS = [
    "id",
    "function_id",
    "invocation_id",
    "data",
    "result",
    "error",
    "trigger_type",
    "config",
    "action",
    "timeout_ms",
    "metadata",
    "traceparent",
    "baggage",
    "description",
    "invocation",
    "name",
    "worker_id",
    "previous_worker_id",
    "code",
]
TYPES = [*sorted(KNOWN_TYPES), "", "InvokeFunction", "invoke_function", "futuremessage"]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


@st.composite
def message_like(draw: st.DrawFn) -> dict[str, Any]:
    """A message with a known (or near-known) type and random fields of random types."""
    kind = draw(st.sampled_from(TYPES) | json_values)
    fields = draw(st.dictionaries(st.sampled_from(FIELDS), json_values | hostile_ids, max_size=6))
    return {"type": kind, **fields}


TEMPLATES: list[dict[str, Any]] = [
    {"type": "registerfunction", "id": "h.fn", "description": "d", "metadata": {"timeout_ms": 5}},
    {"type": "unregisterfunction", "id": "h.fn"},
    {"type": "invokefunction", "invocation_id": "inv-1", "function_id": "h.fn", "data": {"a": 1}},
    {"type": "invokefunction", "function_id": "h.other", "data": [1, 2]},
    {
        "type": "invokefunction",
        "invocation_id": "inv-2",
        "function_id": "h.fn",
        "action": {"type": "void"},
    },
    {
        "type": "invokefunction",
        "invocation_id": "inv-3",
        "function_id": "h.fn",
        "action": {"type": "enqueue"},
    },
    {"type": "invocationresult", "invocation_id": "inv-1", "function_id": "h.fn", "result": 1},
    {"type": "invocationresult", "invocation_id": "inv-9", "error": {"code": "x", "message": "y"}},
    {"type": "registertriggertype", "id": "h.type", "description": "t"},
    {"type": "unregistertriggertype", "id": "h.type"},
    {
        "type": "registertrigger",
        "id": "t1",
        "trigger_type": "h.type",
        "function_id": "h.fn",
        "config": {},
    },
    {
        "type": "registertrigger",
        "id": "t2",
        "trigger_type": "engine::functions-available",
        "function_id": "h.fn",
        "config": None,
    },
    {"type": "unregistertrigger", "id": "t1"},
    {"type": "triggerregistrationresult", "id": "t1", "error": {"code": "c", "message": "m"}},
    {"type": "registerservice", "id": "h.svc", "name": "svc"},
    {"type": "ping"},
    {"type": "pong"},
    {"type": "workerregistered", "worker_id": "w"},
    {"type": "reattach", "previous_worker_id": "w"},
]


@st.composite
def mutated_message(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with keys dropped, retyped or renamed (and sometimes left valid)."""
    msg = dict(draw(st.sampled_from(TEMPLATES)))
    for key in draw(st.lists(st.sampled_from(sorted(msg)), max_size=2, unique=True)):
        action = draw(st.sampled_from(["drop", "retype", "id"]))
        if action == "drop":
            del msg[key]
        elif action == "retype":
            msg[key] = draw(json_values)
        else:
            msg[key] = draw(hostile_ids)
    return msg


def _deep(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


huge_frames = st.builds(
    lambda size, field: _dumps(
        {"type": "invokefunction", "function_id": "h.fn", field: "x" * size}
    ),
    st.integers(min_value=50_000, max_value=1_500_000),
    st.sampled_from(["function_id", "data", "traceparent", "pad"]),
)
deep_frames = st.builds(
    lambda depth, kind, wrap: (
        b'{"type":"invokefunction","invocation_id":"deep","function_id":"h.fn","data":'
        + _deep(depth, kind)
        + b"}"
        if wrap
        else _deep(depth, kind)
    ),
    st.integers(min_value=1, max_value=20_000),
    st.sampled_from(["list", "object"]),
    st.booleans(),
)
json_frames = json_values.map(_dumps) | message_like().map(_dumps) | mutated_message().map(_dumps)
garbage = st.binary(max_size=64) | st.sampled_from([b"", b" ", b"{", b"null", b"[]", b'"x"', b"{}"])
INVALID_UTF8 = [b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"]


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    """A JSON frame with invalid UTF-8 spliced in (often inside a string)."""
    body = draw(mutated_message().map(_dumps))
    at = draw(st.integers(min_value=0, max_value=len(body)))
    return body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:]


# Near-valid messages come first and twice: they reach the registries, where bugs hide.
payloads = st.one_of(
    mutated_message().map(_dumps),
    mutated_message().map(_dumps),
    json_frames,
    garbage,
    invalid_utf8(),
    deep_frames,
    huge_frames,
)
telemetry = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from([*TELEMETRY_PREFIXES, b"OTL", b"otlp", b"MTR"]),
    st.binary(max_size=64) | json_frames,
)
frames: st.SearchStrategy[Frame] = st.tuples(st.just("text"), payloads) | st.tuples(
    st.just("binary"), payloads | telemetry
)
"""Any hostile frame."""
