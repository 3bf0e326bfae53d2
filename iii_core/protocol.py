"""The iii worker protocol: message types, decoding and encoding (sans-I/O).

Every text frame (and every binary frame without a telemetry prefix) holds one JSON message whose
``type`` key names the variant in lowercase with no separators.  This module turns one frame into
a typed message and typed messages back into bytes; it touches no socket, registry or clock.

Contract:

* :func:`decode_message` takes the frame's bytes (or str) and returns a message struct, or raises
  :class:`~iii_core.errors.ProtocolError` (malformed JSON, a wrong type, a missing required
  field) or :class:`~iii_core.errors.UnknownMessageType` (well-formed, but a ``type`` this engine
  does not know: newer SDKs may send such messages and they must be tolerated).
* Unknown fields are ignored, so later SDK fields never make a frame fail.
* ``data`` and ``result`` are kept as :class:`msgspec.Raw`: the engine forwards them without
  decoding and re-encoding them.
* :func:`encode` writes compact JSON; optional fields that are absent are left out, as the
  reference engine does.
"""

from __future__ import annotations

from typing import Any, Final, cast

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from iii_core.errors import ProtocolError, UnknownMessageType

TELEMETRY_PREFIXES: Final = (b"OTLP", b"MTRC", b"LOGS")
NULL: Final = Raw(b"null")


class ErrorBody(Struct, kw_only=True, omit_defaults=True):
    """``{code, message, stacktrace?}`` carried by a failed invocation."""

    code: str
    message: str = ""
    stacktrace: str | None = None


class _Message(Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every protocol message: internally tagged by ``type``."""


class RegisterFunction(_Message, tag="registerfunction"):
    id: str
    description: str | None = None
    request_format: Any = None
    response_format: Any = None
    metadata: Any = None
    invocation: dict[str, Any] | None = None
    namespace: str | None = None


class UnregisterFunction(_Message, tag="unregisterfunction"):
    id: str


class RegisterTriggerType(_Message, tag="registertriggertype"):
    id: str
    description: str = ""
    trigger_request_format: Any = None
    call_request_format: Any = None
    namespace: str | None = None


class UnregisterTriggerType(_Message, tag="unregistertriggertype"):
    id: str
    description: str | None = None


class RegisterTrigger(_Message, tag="registertrigger"):
    """W→E: bind a trigger; E→W: ask a trigger-type provider to start it (``config`` is always
    sent)."""

    id: str
    trigger_type: str
    function_id: str
    config: Any
    metadata: Any = None
    namespace: str | None = None
    trigger_namespace: str | None = None


class UnregisterTrigger(_Message, tag="unregistertrigger"):
    id: str
    trigger_type: str | None = None


class TriggerRegistrationResult(_Message, tag="triggerregistrationresult"):
    id: str
    trigger_type: str = ""
    function_id: str = ""
    error: ErrorBody | None = None


class InvokeFunction(_Message, tag="invokefunction", kw_only=True):
    """A call.  Without ``invocation_id`` it is fire-and-forget."""

    invocation_id: str | None = None
    function_id: str
    data: Raw = NULL
    traceparent: str | None = None
    baggage: str | None = None
    metadata: Any = None
    action: dict[str, Any] | None = None
    timeout_ms: int | None = None
    namespace: str | None = None


class InvocationResult(_Message, tag="invocationresult"):
    """The outcome of a call: ``result`` or ``error`` (``error`` wins when both are present)."""

    invocation_id: str
    function_id: str = ""
    result: Raw | UnsetType = UNSET
    error: ErrorBody | None = None
    traceparent: str | None = None
    baggage: str | None = None


class RegisterService(_Message, tag="registerservice"):
    id: str
    name: str = ""
    description: str | None = None
    parent_service_id: str | None = None


class Ping(_Message, tag="ping"):
    pass


class Pong(_Message, tag="pong"):
    pass


class WorkerRegistered(_Message, tag="workerregistered"):
    worker_id: str
    reattach_token: str | None = None


class Reattach(_Message, tag="reattach"):
    previous_worker_id: str
    reattach_token: str | None = None


class RegistrationRejected(_Message, tag="registrationrejected"):
    code: str
    namespace: str | None = None
    worker_name: str | None = None
    function_id: str | None = None
    owner_worker_id: str | None = None


Message = (
    RegisterFunction
    | UnregisterFunction
    | RegisterTriggerType
    | UnregisterTriggerType
    | RegisterTrigger
    | UnregisterTrigger
    | TriggerRegistrationResult
    | InvokeFunction
    | InvocationResult
    | RegisterService
    | Ping
    | Pong
    | WorkerRegistered
    | Reattach
    | RegistrationRejected
)

KNOWN_TYPES: Final = frozenset(
    cls.__struct_config__.tag  # type: ignore[attr-defined]
    for cls in Message.__args__  # type: ignore[attr-defined]
)


class _TypeOnly(Struct):
    type: Any = None


_decoder: Final = msgspec.json.Decoder(Message)
_type_decoder: Final = msgspec.json.Decoder(_TypeOnly)
_encoder: Final = msgspec.json.Encoder()

encode = _encoder.encode
"""Encode a message (or any msgspec-serialisable value) to compact JSON bytes."""

decode_json = msgspec.json.decode
"""Decode JSON bytes (for example a :class:`msgspec.Raw` payload) to Python objects."""


def decode_message(frame: bytes | str) -> Message:
    """Decode one frame into a message; raise ``ProtocolError`` or ``UnknownMessageType``."""
    try:
        if not isinstance(frame, str) and not frame.isascii():
            # Raw payloads are forwarded without being decoded: check their UTF-8 here, or a
            # caller could make the engine send a text frame that closes the target's socket.
            frame.decode()
        return _decoder.decode(frame)
    except msgspec.DecodeError as exc:
        _raise_precise(frame, exc)
        raise AssertionError("unreachable") from exc
    except UnicodeError as exc:  # invalid UTF-8 bytes, or a str holding lone surrogates
        err = cast("UnicodeDecodeError | UnicodeEncodeError", exc)
        raise ProtocolError(f"not valid UTF-8 text: {err.reason} at {err.start}") from None
    except RecursionError:  # msgspec skips unknown deep values recursively
        raise ProtocolError("JSON nested too deeply") from None


def _raise_precise(frame: bytes | str, exc: msgspec.DecodeError) -> None:
    try:
        head = _type_decoder.decode(frame)
    except (msgspec.DecodeError, RecursionError):
        raise ProtocolError(f"not a JSON object: {exc}") from None
    if not isinstance(head.type, str):
        raise ProtocolError("missing or non-string 'type' field") from None
    if head.type not in KNOWN_TYPES:
        raise UnknownMessageType(head.type) from None
    raise ProtocolError(f"invalid {head.type!r} message: {exc}") from None


def raw(value: Any) -> Raw:
    """Wrap an already-decoded Python value as a :class:`msgspec.Raw` JSON payload."""
    return Raw(_encoder.encode(value))


def raw_to_python(payload: Raw | UnsetType | None) -> Any:
    """Decode a raw payload; absent payloads become ``None``."""
    if payload is None or payload is UNSET or not payload:
        return None
    return msgspec.json.decode(payload)


def is_null(payload: Raw | UnsetType | None) -> bool:
    """True when a raw payload is absent or the JSON ``null`` literal."""
    return payload is None or payload is UNSET or not payload or bytes(payload) == b"null"


def inject_caller(data: Raw, caller_worker_id: str) -> Raw:
    """Add ``"_caller_worker_id"`` to an object payload without decoding it.

    The reference engine adds the caller's worker id to object payloads.  Splicing the key into
    the raw bytes costs one copy instead of a decode and an encode.  The key goes last so that it
    wins over a value a worker put there itself.  Non-object payloads are returned unchanged.
    """
    body = bytes(data)
    if not body or body[0] != 0x7B:  # "{"
        return data
    inner = body[1:-1]
    sep = b"," if inner.strip() else b""
    return Raw(b"{" + inner + sep + b'"_caller_worker_id":"' + caller_worker_id.encode() + b'"}')


def telemetry_prefix(frame: bytes) -> bytes | None:
    """The 4-byte telemetry prefix of a binary frame, or ``None`` for a protocol message."""
    head = frame[:4]
    return head if head in TELEMETRY_PREFIXES else None


PONG_FRAME: Final = encode(Pong())
