"""Reconnect policy and connection states.

The defaults follow the published Python SDK: first retry after 1 s, doubling up to 30 s, each
delay moved by up to ±30 % at random so that many workers cut off by one engine restart do not
all come back in the same instant; retries never stop unless ``max_retries`` is set.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class ConnectionState(enum.StrEnum):
    """The states reported to :meth:`Worker.on_connection_state` listeners."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """Exponential backoff with jitter between connection attempts.

    ``max_retries`` counts consecutive failed attempts (``None``: retry forever); once reached
    the worker goes to ``failed`` and stops.  ``enabled=False`` turns reconnecting off: a dropped
    connection then ends the worker in state ``disconnected``.
    """

    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.3
    max_retries: int | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be >= 0 or None")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = the first retry)."""
        base = min(self.initial_delay * self.multiplier ** max(attempt - 1, 0), self.max_delay)
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))
