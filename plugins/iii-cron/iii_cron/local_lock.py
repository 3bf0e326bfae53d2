"""``modules::cron::LocalCronAdapter`` (reference name ``modules::cron::KvCronAdapter``).

A lock held in this engine's memory: it stops a job from overlapping with itself and costs
nothing, but it does not coordinate engines.  With several engines, each fires every tick: use
``modules::cron::RedisCronAdapter`` there.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

import attrs

from iii_core import structure

log = logging.getLogger("iii.cron")


@attrs.define(frozen=True)
class LocalCronConfig:
    """``lock_ttl_ms``: a lock older than this is considered abandoned.  ``lock_index`` and the
    KV store keys of the reference (``store_method``, ``file_path``, ``save_interval_ms``) are
    accepted so that reference configs load; locks live in memory, so they change nothing."""

    lock_ttl_ms: int = 30_000
    lock_index: str = "cron_locks"
    store_method: str | None = None
    file_path: str | None = None
    save_interval_ms: int | None = None


class LocalCronLock:
    """Job id → (token, expiry); one entry per job currently firing, so it is bounded by the
    module's ``max_jobs``."""

    def __init__(self, config: LocalCronConfig) -> None:
        if config.lock_ttl_ms <= 0:
            raise ValueError("lock_ttl_ms must be positive")
        self.config = config
        self._held: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_config(cls, config: dict[str, object] | None, where: str) -> LocalCronLock:
        return cls(structure(LocalCronConfig, config, where))

    async def start(self) -> None:
        log.info(
            "cron locks are local to this engine: with several engines every engine fires every "
            "job (use modules::cron::RedisCronAdapter to fire each tick once)"
        )

    async def acquire(self, job_id: str, scheduled: datetime) -> str | None:
        now = time.monotonic()
        held = self._held.get(job_id)
        if held is not None and held[1] > now:
            return None
        token = uuid.uuid4().hex
        self._held[job_id] = (token, now + self.config.lock_ttl_ms / 1000)
        return token

    async def release(self, job_id: str, token: str) -> None:
        held = self._held.get(job_id)
        if held is not None and held[0] == token:
            del self._held[job_id]

    async def close(self) -> None:
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)
