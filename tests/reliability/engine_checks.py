"""Invariants of the engine's registries and the bad-frame accounting oracle, shared by tests."""

from __future__ import annotations

import logging

from iii_core.engine import Engine
from iii_core.errors import ProtocolError, UnknownMessageType
from iii_core.protocol import decode_message, telemetry_prefix

BAD_FRAME_LOGS = ("sent an invalid frame", "unknown message type")


def assert_consistent(engine: Engine) -> None:
    """Every cross-reference between workers, functions, calls, triggers and types holds."""
    workers = {w.id: w for w in engine.workers}
    for entry in engine.functions:
        if entry.handler is None:
            assert entry.owners, f"function {entry.id!r} has no owner"
        for owner in entry.owners:
            assert workers.get(owner.id) is owner, f"{entry.id!r} owned by a gone worker"
            assert entry.id in owner.function_ids
    for worker in workers.values():
        for function_id in worker.function_ids:
            entry = engine.functions.get(function_id)
            assert entry is not None and worker in entry.owners, (worker.id, function_id)
        assert worker.inflight <= engine.router.pending.keys(), "inflight id not pending"
        for trigger_id in worker.trigger_ids:
            trigger = engine.triggers.get(trigger_id)
            assert trigger is not None and trigger.worker_id == worker.id, trigger_id
        for type_id in worker.trigger_type_ids:
            ttype = engine.trigger_types.get(type_id)
            assert ttype is not None and ttype.worker is worker, type_id
    for pending_id, p in engine.router.pending.items():
        assert p.target is not None and workers.get(p.target.id) is p.target, pending_id
        assert pending_id in p.target.inflight
        if p.caller is not None and p.caller_id is not None:
            assert workers.get(p.caller.id) is p.caller and pending_id in p.caller.inflight
    for trigger in engine.triggers:
        if trigger.worker_id is not None:
            assert trigger.worker_id in workers, f"trigger {trigger.id} of a gone worker"
    for ttype in engine.trigger_types:
        if ttype.worker is not None:
            assert workers.get(ttype.worker.id) is ttype.worker, f"type {ttype.id} of a gone worker"


def counts_as_protocol_error(kind: str, payload: bytes | str) -> bool:
    """Whether the engine must count this frame in ``protocol_errors_total``."""
    if kind == "binary" and isinstance(payload, bytes) and telemetry_prefix(payload) is not None:
        return False
    try:
        decode_message(payload)
    except UnknownMessageType:
        return False
    except ProtocolError:
        return not (isinstance(payload, str) and not payload.strip())
    return False


def is_bad_frame(kind: str, payload: bytes | str) -> bool:
    """Whether the frame is dropped (invalid or of an unknown type): what gets logged once."""
    if kind == "binary" and isinstance(payload, bytes) and telemetry_prefix(payload) is not None:
        return False
    try:
        decode_message(payload)
    except UnknownMessageType:
        return True
    except ProtocolError:
        return not (isinstance(payload, str) and not payload.strip())
    return False


def bad_frame_logs(records: list[logging.LogRecord], worker_id: str) -> int:
    """How many bad-frame warnings name ``worker_id``."""
    return sum(
        1
        for r in records
        if r.name == "iii.worker"
        and worker_id in r.getMessage()
        and any(text in r.getMessage() for text in BAD_FRAME_LOGS)
    )
