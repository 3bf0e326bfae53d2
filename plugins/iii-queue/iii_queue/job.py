"""The records a queue stores: a job waiting or being handled, and a dead letter.

Both are msgspec structs so that an adapter stores one compact JSON document per message and
decodes it in one step on the claim path.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import msgspec

_counter = itertools.count()
_node = os.urandom(8).hex()


def new_job_id() -> str:
    """A receipt id that sorts by creation time (UUIDv7-like layout).

    Adapters break ties between messages that become visible in the same millisecond by id, so a
    time-ordered id keeps enqueue order without a global counter.
    """
    ms = time.time_ns() // 1_000_000
    seq = next(_counter) & 0xFFF
    raw = f"{ms:012x}7{seq:03x}{_node}"
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Job(msgspec.Struct, omit_defaults=True):
    """One message in a queue.

    ``attempts`` counts failed handler runs (a redelivery after a crash does not count).
    ``function_id`` is set for messages of a named queue (``action: enqueue``): the consumer calls
    that function; topic messages go to the topic's triggers instead.  ``lease`` is the token of
    the current claim; it is not part of the stored document.
    """

    id: str
    topic: str
    data: Any = None
    attempts: int = 0
    group_id: str = "default"
    created_at: int = 0
    function_id: str | None = None
    traceparent: str | None = None
    baggage: str | None = None
    lease: str = ""

    def encode(self) -> bytes:
        return _encoder.encode(_Stored(*(getattr(self, f) for f in _Stored.__struct_fields__)))


class _Stored(msgspec.Struct, omit_defaults=True, array_like=True):
    id: str
    topic: str
    data: Any = None
    attempts: int = 0
    group_id: str = "default"
    created_at: int = 0
    function_id: str | None = None
    traceparent: str | None = None
    baggage: str | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Stored)


def decode_job(raw: bytes | str, lease: str = "") -> Job:
    s = _decoder.decode(raw)
    return Job(
        s.id,
        s.topic,
        s.data,
        s.attempts,
        s.group_id,
        s.created_at,
        s.function_id,
        s.traceparent,
        s.baggage,
        lease,
    )


class DeadLetter(msgspec.Struct):
    """A job whose last attempt failed, with the error of that attempt."""

    job: Job
    error: str
    failed_at: int

    def info(self) -> dict[str, Any]:
        """The shape ``queue::dlq::list`` returns."""
        out: dict[str, Any] = {
            "id": self.job.id,
            "topic": self.job.topic,
            "data": self.job.data,
            "attempts": self.job.attempts,
            "group_id": self.job.group_id,
            "created_at": self.job.created_at,
            "error": self.error,
            "failed_at": self.failed_at,
        }
        if self.job.function_id is not None:
            out["function_id"] = self.job.function_id
        return out

    def encode(self) -> bytes:
        return msgspec.json.encode([self.job.encode().decode(), self.error, self.failed_at])


def decode_dead_letter(raw: bytes | str) -> DeadLetter:
    job_raw, error, failed_at = msgspec.json.decode(raw)
    return DeadLetter(decode_job(job_raw), error, failed_at)
