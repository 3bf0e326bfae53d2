"""Property-based tests of the sans-I/O protocol code and of frame dispatch (no sockets).

``WorkerMessages`` runs against a real, unstarted :class:`Engine` whose workers have an
in-memory connection object (a fake of the transport only: the registries, the router and the
dispatch are the real ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import pytest
from engine_checks import assert_consistent, bad_frame_logs, counts_as_protocol_error, is_bad_frame
from hostile_frames import GOOD_PREFIX, Frame, frames, json_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iii_core.config import EngineConfig
from iii_core.engine import Engine
from iii_core.errors import ProtocolError
from iii_core.protocol import (
    TELEMETRY_PREFIXES,
    decode_message,
    encode,
    inject_caller,
    telemetry_prefix,
)
from iii_core.registries import Worker
from iii_core.worker_messages import WorkerMessages

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(frames)
def test_decode_raises_only_protocol_errors_and_round_trips(frame: Frame) -> None:
    _, payload = frame
    try:
        msg = decode_message(payload)
    except ProtocolError:
        return
    # A frame that decodes re-encodes to an equal message: nothing is lost or invented.
    assert decode_message(encode(msg)) == msg


@FUZZ
@given(st.text(max_size=40))
def test_decode_str_frames_with_any_code_points(text: str) -> None:
    """``str`` frames may hold lone surrogates (not encodable as UTF-8): still a ProtocolError."""
    for frame in (text, '{"type":"registerfunction","id":"' + text + '"}'):
        with contextlib.suppress(ProtocolError):
            decode_message(frame)


@FUZZ
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    st.sampled_from([None, 0, 2]),
    st.sampled_from(["", " ", "\n\t "]),
)
def test_inject_caller_adds_the_caller_last(
    data: dict[str, Any], indent: int | None, pad: str
) -> None:
    worker_id = str(uuid.uuid4())
    body = pad + json.dumps(data, indent=indent) + pad
    frame = '{"type":"invokefunction","function_id":"f","data":' + body + ',"baggage":"b"}'
    msg = decode_message(frame)
    out = json.loads(bytes(inject_caller(msg.data, worker_id)))  # type: ignore[union-attr]
    assert out == {**data, "_caller_worker_id": worker_id}


@FUZZ
@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_inject_caller_leaves_non_objects_alone(value: Any) -> None:
    msg = decode_message(json.dumps({"type": "invokefunction", "function_id": "f", "data": value}))
    assert json.loads(bytes(inject_caller(msg.data, "w"))) == value  # type: ignore[union-attr]


@FUZZ
@given(st.sampled_from([*TELEMETRY_PREFIXES, b"", b"OTL", b"LOG", b"otlp"]), st.binary(max_size=32))
def test_telemetry_prefix(prefix: bytes, rest: bytes) -> None:
    frame = prefix + rest
    expected = frame[:4] if frame[:4] in TELEMETRY_PREFIXES else None
    assert telemetry_prefix(frame) == expected


# ---------------------------------------------------------------------- dispatch (no sockets)


class MemoryConnection:
    """Records what the engine sends a worker (in place of the WebSocket transport)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send(self, frame: bytes) -> None:
        self.sent.append(json.loads(frame))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _settle(engine: Engine) -> None:
    """Let the engine's own tasks (fire-and-forget engine events) finish."""
    for _ in range(200):
        if not engine.task_count:
            return
        await asyncio.sleep(0)


async def _good_call(messages: WorkerMessages, a: Worker, b: Worker, n: int) -> None:
    """``a`` calls ``b``'s function through the real router; ``b`` answers; ``a`` gets it."""
    conn_a, conn_b = a.conn, b.conn
    assert isinstance(conn_a, MemoryConnection) and isinstance(conn_b, MemoryConnection)
    call_id = f"good-{n}"
    messages.handle_frame(
        a,
        encode(
            {
                "type": "invokefunction",
                "invocation_id": call_id,
                "function_id": f"{GOOD_PREFIX}.echo",
                "data": {"n": n},
            }
        ),
    )
    request = conn_b.sent.pop()
    assert request["type"] == "invokefunction" and request["data"]["n"] == n
    assert request["data"]["_caller_worker_id"] == a.id
    messages.handle_frame(
        b,
        encode(
            {
                "type": "invocationresult",
                "invocation_id": request["invocation_id"],
                "function_id": request["function_id"],
                "result": {"n": n},
            }
        ),
    )
    reply = conn_a.sent.pop()
    assert reply == {
        "type": "invocationresult",
        "invocation_id": call_id,
        "function_id": f"{GOOD_PREFIX}.echo",
        "result": {"n": n},
    }


async def _dispatch_scenario(batch: list[tuple[Frame, bool]]) -> None:
    engine = Engine(EngineConfig(modules=[]))
    messages = WorkerMessages(engine)
    records = _Records()
    logger = logging.getLogger("iii.worker")
    logger.addHandler(records)
    try:
        a, b, h = (engine.worker_connected(MemoryConnection(), "127.0.0.1", "/") for _ in range(3))
        await _maybe(
            messages.handle_frame(
                b, encode({"type": "registerfunction", "id": f"{GOOD_PREFIX}.echo"})
            )
        )
        await _settle(engine)
        baseline = engine.gauges()
        errors_expected = 0
        bad_frames = 0
        for n, ((kind, payload), as_str) in enumerate(batch):
            frame: bytes | str = payload
            if kind == "text" and as_str:
                frame = payload.decode("utf-8", "surrogateescape")
            errors_expected += counts_as_protocol_error(kind, frame)
            bad_frames += is_bad_frame(kind, frame)
            try:
                if kind == "text":
                    await _maybe(messages.handle_frame(h, frame))
                else:
                    await _maybe(messages.handle_binary(h, payload))
            except ProtocolError:
                pass  # the only family allowed to escape
            assert_consistent(engine)
            await _good_call(messages, a, b, n)
        assert engine.protocol_errors_total == errors_expected
        assert bad_frame_logs(records.records, h.id) == (1 if bad_frames else 0)
        assert not any(a.id in r.getMessage() or b.id in r.getMessage() for r in records.records)
        await engine.worker_disconnected(h)
        assert_consistent(engine)
        await _settle(engine)
        assert engine.gauges() == {**baseline, "workers": 2, "workers_active": 2}
    finally:
        logger.removeHandler(records)
        await engine._tasks.cancel_all(timeout=1.0)


async def _maybe(result: Any) -> None:
    if result is not None:
        await result


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(frames, st.booleans()), max_size=25))
def test_dispatch_of_hostile_frames_keeps_registries_consistent(
    batch: list[tuple[Frame, bool]],
) -> None:
    asyncio.run(_dispatch_scenario(batch))


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"registerfunction","id":"\xff"}',
        b'{"type":"invokefunction","function_id":"x","data":"\xed\xa0\x80"}',
        b'{"type":"ping","pad":"\xc3"}',
    ],
)
def test_invalid_utf8_is_a_protocol_error(frame: bytes) -> None:
    """Regression: msgspec raised UnicodeDecodeError (and skipped ``data`` unchecked)."""
    with pytest.raises(ProtocolError, match="UTF-8"):
        decode_message(frame)


async def test_invalid_utf8_call_with_an_id_gets_invalid_message() -> None:
    engine = Engine(EngineConfig(modules=[]))
    messages = WorkerMessages(engine)
    conn = MemoryConnection()
    worker = engine.worker_connected(conn, "127.0.0.1", "/")
    messages.handle_frame(
        worker, b'{"type":"invokefunction","invocation_id":"i1","function_id":"f","data":"\xff"}'
    )
    assert conn.sent[-1]["invocation_id"] == "i1"
    assert conn.sent[-1]["error"]["code"] == "invalid_message"
    assert engine.protocol_errors_total == 1
