"""Sans-I/O protocol tests, driven by the frames the published SDKs really send."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from iii_core import protocol
from iii_core.errors import ProtocolError, UnknownMessageType
from iii_core.protocol import (
    InvocationResult,
    InvokeFunction,
    RegisterTrigger,
    UnregisterTrigger,
    WorkerRegistered,
)
from iii_core.testing import protocol_vectors

VECTORS = Path(protocol_vectors())


def _vector_frames(direction: str) -> list[tuple[str, dict]]:
    frames = []
    for path in sorted(VECTORS.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("dir") == direction and "json" in record and "prefix" not in record:
                frames.append((f"{path.relative_to(VECTORS)}", record["json"]))
    return frames


def test_vectors_are_present() -> None:
    assert VECTORS.is_dir(), f"test vectors missing at {VECTORS}"
    assert len(_vector_frames("w2e")) > 100


@pytest.mark.parametrize(("source", "frame"), _vector_frames("w2e"))
def test_every_sdk_frame_decodes(source: str, frame: dict) -> None:
    msg = protocol.decode_message(json.dumps(frame).encode())
    assert type(msg).__struct_config__.tag == frame["type"]  # type: ignore[attr-defined]


def test_invoke_keeps_data_raw_and_optional_fields() -> None:
    msg = protocol.decode_message(
        b'{"function_id":"a","data":{"x":[1,2]},"action":{"type":"void"},'
        b'"metadata":{"tenant":"t1"},"namespace":"default","type":"invokefunction"}'
    )
    assert isinstance(msg, InvokeFunction)
    assert bytes(msg.data) == b'{"x":[1,2]}'
    assert msg.invocation_id is None
    assert msg.action == {"type": "void"}
    assert msg.metadata == {"tenant": "t1"}


def test_encoding_omits_absent_fields() -> None:
    out = protocol.encode(InvocationResult(invocation_id="i", function_id="f"))
    assert json.loads(out) == {"type": "invocationresult", "invocation_id": "i", "function_id": "f"}
    out = protocol.encode(
        InvokeFunction(invocation_id="i", function_id="f", data=protocol.raw({"a": 1}))
    )
    assert json.loads(out) == {
        "type": "invokefunction",
        "invocation_id": "i",
        "function_id": "f",
        "data": {"a": 1},
    }
    assert json.loads(protocol.encode(WorkerRegistered(worker_id="w"))) == {
        "type": "workerregistered",
        "worker_id": "w",
    }


def test_registertrigger_always_carries_config_and_unregister_its_type() -> None:
    out = json.loads(
        protocol.encode(RegisterTrigger(id="t", trigger_type="x", function_id="f", config=None))
    )
    assert out == {
        "type": "registertrigger",
        "id": "t",
        "trigger_type": "x",
        "function_id": "f",
        "config": None,
    }
    out = json.loads(protocol.encode(UnregisterTrigger(id="t", trigger_type="x")))
    assert out == {"type": "unregistertrigger", "id": "t", "trigger_type": "x"}


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"not json", ProtocolError),
        (b"[1,2]", ProtocolError),
        (b'{"no":"type"}', ProtocolError),
        (b'{"type":7}', ProtocolError),
        (b'{"type":"invokefunction"}', ProtocolError),
        (b'{"type":"invokefunction","function_id":5}', ProtocolError),
        (b'{"type":"registerfunction"}', ProtocolError),
        (b'{"type":"brandnew","x":1}', UnknownMessageType),
        (b"\xff\xfe", ProtocolError),
    ],
)
def test_bad_frames_raise_protocol_errors(frame: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        protocol.decode_message(frame)


def test_unknown_fields_are_ignored() -> None:
    msg = protocol.decode_message(
        b'{"type":"registertrigger","id":"t","trigger_type":"http","function_id":"f",'
        b'"config":{},"message_type":"registertrigger","future_field":[1]}'
    )
    assert isinstance(msg, RegisterTrigger)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{}", {"_caller_worker_id": "w"}),
        (b'{"a":1}', {"a": 1, "_caller_worker_id": "w"}),
        (b'{ "a" : 1 }', {"a": 1, "_caller_worker_id": "w"}),
        (b'{"_caller_worker_id":"spoofed"}', {"_caller_worker_id": "w"}),
        (b"[1]", [1]),
        (b"null", None),
        (b'"s"', "s"),
    ],
)
def test_inject_caller(data: bytes, expected: object) -> None:
    out = protocol.inject_caller(msgspec.Raw(data), "w")
    assert msgspec.json.decode(out) == expected


def test_telemetry_prefix() -> None:
    assert protocol.telemetry_prefix(b"OTLP{}") == b"OTLP"
    assert protocol.telemetry_prefix(b"MTRC{}") == b"MTRC"
    assert protocol.telemetry_prefix(b"LOGS{}") == b"LOGS"
    assert protocol.telemetry_prefix(b'{"type":"ping"}') is None


def test_null_result_is_no_value() -> None:
    msg = protocol.decode_message(
        b'{"type":"invocationresult","invocation_id":"i","function_id":"f","result":null}'
    )
    assert isinstance(msg, InvocationResult)
    assert protocol.is_null(msg.result)
