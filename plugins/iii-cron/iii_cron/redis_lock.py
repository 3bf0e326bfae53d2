"""``modules::cron::RedisCronAdapter``: one Redis shared by several engines, each tick once.

The reference takes ``SET cron_lock:<job_id> <instance> NX PX <ttl>`` and deletes it after the
handler with a Lua compare-and-delete.  That alone lets an engine that wakes up late (after the
first engine already released) fire the same tick again.  So the acquire script also records the
last tick fired per job (``cron_fired:<job_id>``, epoch ms) and refuses a tick that is not newer.
Both steps run in one Lua script, so the claim is atomic.  The lock still stops a job from
overlapping with itself across engines while a handler runs, as in the reference.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

import attrs
import redis.asyncio as aioredis

from iii_core import structure
from iii_core.errors import ConfigError

log = logging.getLogger("iii.cron")

# KEYS[1] lock key, KEYS[2] fired key; ARGV: token, tick (epoch ms), lock ttl ms, fired ttl ms.
_ACQUIRE = """
local last = redis.call('GET', KEYS[2])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@attrs.define(frozen=True)
class RedisCronConfig:
    redis_url: str = "redis://localhost:6379"
    lock_ttl_ms: int = 30_000
    """A lock whose engine died is free again after this long."""
    fired_ttl_ms: int = 3_600_000
    """How long the last-fired tick is remembered (an engine later than this could re-fire)."""
    key_prefix: str = "cron_lock:"
    fired_key_prefix: str = "cron_fired:"
    connect_timeout_ms: int = 5_000
    """Start-up fails when Redis does not answer a PING within this delay."""


class RedisCronLock:
    def __init__(self, config: RedisCronConfig, where: str = "RedisCronAdapter config") -> None:
        for key in ("lock_ttl_ms", "fired_ttl_ms", "connect_timeout_ms"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"{where}: '{key}' must be positive")
        if config.key_prefix == config.fired_key_prefix:
            raise ConfigError(f"{where}: 'key_prefix' and 'fired_key_prefix' must differ")
        self.config = config
        self.instance_id = uuid.uuid4().hex
        self._redis: Any = None
        self._acquire: Any = None
        self._release: Any = None

    @classmethod
    def from_config(cls, config: dict[str, object] | None, where: str) -> RedisCronLock:
        return cls(structure(RedisCronConfig, config, where), where)

    async def start(self) -> None:
        timeout = self.config.connect_timeout_ms / 1000
        self._redis = aioredis.from_url(
            self.config.redis_url, socket_connect_timeout=timeout, decode_responses=True
        )
        try:
            await asyncio.wait_for(self._redis.ping(), timeout)
        except Exception as exc:  # any failure means "not reachable"
            await self._redis.aclose()
            self._redis = None
            raise ConfigError(
                f"RedisCronAdapter: cannot reach Redis at {self.config.redis_url} "
                f"within {timeout:g} s: {exc or type(exc).__name__}"
            ) from None
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)

    async def acquire(self, job_id: str, scheduled: datetime) -> str | None:
        tick_ms = int(scheduled.timestamp() * 1000)
        token = f"{self.instance_id}:{tick_ms}"
        won = await self._acquire(
            keys=[self.config.key_prefix + job_id, self.config.fired_key_prefix + job_id],
            args=[token, tick_ms, self.config.lock_ttl_ms, self.config.fired_ttl_ms],
        )
        return token if won == 1 else None

    async def release(self, job_id: str, token: str) -> None:
        await self._release(keys=[self.config.key_prefix + job_id], args=[token])

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
