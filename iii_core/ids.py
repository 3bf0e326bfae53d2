"""Random identifiers and keys, drawn from a buffer of ``os.urandom`` output.

Each ``os.urandom`` is a ``getrandom`` system call; the HTTP path needs three random values per
request (two channels and an invocation id), so they come from a 4 KiB buffer refilled from the
kernel's CSPRNG when it runs out.  The bytes are as unpredictable as ``os.urandom``'s; a forked
child drops the buffer so that it never repeats its parent's values.
"""

from __future__ import annotations

import os
from typing import Final

_REFILL: Final = 4096


class _RandomPool:
    __slots__ = ("_buffer", "_position")

    def __init__(self) -> None:
        self._buffer = b""
        self._position = 0

    def take(self, n: int) -> bytes:
        start = self._position
        end = start + n
        if end > len(self._buffer):
            self._buffer = os.urandom(max(_REFILL, n))
            start, end = 0, n
        self._position = end
        return self._buffer[start:end]

    def reset(self) -> None:
        self._buffer = b""
        self._position = 0


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.reset)

random_bytes = _pool.take
"""``n`` random bytes from the pool (never handed out twice)."""


def uuid4_of(random: bytes) -> str:
    """A version-4 UUID string built from the first 16 bytes of ``random``."""
    h = random[:16].hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def new_uuid4() -> str:
    """A random version-4 UUID string (what ``str(uuid.uuid4())`` gives, without the syscall)."""
    return uuid4_of(random_bytes(16))
