"""The Redis state adapter (``modules::state::adapters::RedisAdapter``): one hash per scope, under
the key ``<key_prefix><scope>`` (``state:<scope>`` by default, as in the reference).

``set`` and ``delete`` read the old value and write in one Lua script, so they are atomic.  An
``update`` is serialised per key inside this engine (an asyncio lock, so that concurrent updates
from many workers do not all collide) and made atomic against other engines sharing the Redis
with ``WATCH``/``MULTI``: a concurrent write to the hash makes the transaction retry.  The ops run
in Python rather than in Lua because Redis's cjson cannot round-trip JSON faithfully (an empty
array comes back as ``{}``, large integers as floats).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from typing import Any, cast

import attrs
import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError, WatchError

from iii_core import structure
from iii_core.errors import ConfigError
from iii_state.ops import UpdateOp, apply_ops
from iii_state.sqlite_store import MIB
from iii_state.store import StoreError

log = logging.getLogger("iii.state.redis")

_SET = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
"""
_DELETE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then redis.call('HDEL', KEYS[1], ARGV[1]) end
return old
"""


@attrs.define(frozen=True)
class RedisAdapterConfig:
    """``redis_url``: the server; ``key_prefix``: prefix of the per-scope hashes;
    ``connect_timeout_ms``: start-up fails if Redis does not answer within it;
    ``max_update_retries``: ``WATCH`` conflicts tolerated per update before it fails;
    ``max_value_bytes``: the largest JSON value accepted; ``max_connections``: size of the
    connection pool (calls beyond it wait for a free connection)."""

    redis_url: str = "redis://localhost:6379"
    key_prefix: str = "state:"
    connect_timeout_ms: int = 5000
    max_update_retries: int = 1000
    max_value_bytes: int = 16 * MIB
    max_connections: int = 32


def redis_config(config: Any, where: str) -> RedisAdapterConfig:
    parsed = structure(RedisAdapterConfig, config, where)
    for name in ("connect_timeout_ms", "max_update_retries", "max_connections", "max_value_bytes"):
        if getattr(parsed, name) < 1:
            raise ConfigError(f"{where}: key {name!r} must be at least 1")
    return parsed


class _KeyLocks:
    """One asyncio lock per key with waiters; an entry is dropped when its last user leaves, so
    the map holds at most as many entries as there are updates in flight."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    def enter(self, key: tuple[str, str]) -> asyncio.Lock:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        return lock

    def release(self, key: tuple[str, str]) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class RedisStateAdapter:
    """A :class:`~iii_state.store.Store` over Redis hashes (see the module docstring)."""

    def __init__(self, config: RedisAdapterConfig) -> None:
        self.config = config
        self.redis: Redis | None = None
        self._locks = _KeyLocks()
        self._set: Any = None
        self._delete: Any = None

    async def open(self) -> None:
        pool = BlockingConnectionPool.from_url(
            self.config.redis_url,
            decode_responses=True,
            max_connections=self.config.max_connections,
            timeout=None,
        )
        redis = Redis(connection_pool=pool)
        try:
            await asyncio.wait_for(redis.ping(), self.config.connect_timeout_ms / 1000)
        except (TimeoutError, RedisError, OSError) as exc:
            await redis.aclose()
            await pool.aclose()
            raise StoreError(
                f"cannot connect to Redis at {self.config.redis_url} within "
                f"{self.config.connect_timeout_ms} ms: {exc or type(exc).__name__}"
            ) from exc
        self.redis = redis
        self._set = redis.register_script(_SET)
        self._delete = redis.register_script(_DELETE)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            await self.redis.connection_pool.aclose()
            self.redis = None

    def _client(self) -> Redis:
        if self.redis is None:
            raise StoreError("the Redis adapter is not connected")
        return self.redis

    def _hash(self, scope: str) -> str:
        return self.config.key_prefix + scope

    async def get(self, index: str, key: str) -> tuple[bool, Any]:
        raw = await self._client().hget(self._hash(index), key)  # type: ignore[misc]
        return (False, None) if raw is None else (True, msgspec.json.decode(raw))

    async def set(self, index: str, key: str, value: Any) -> tuple[bool, Any]:
        self._client()
        old = await self._set(keys=[self._hash(index)], args=[key, self._encode(value)])
        return (False, None) if old is None else (True, msgspec.json.decode(old))

    async def delete(self, index: str, key: str) -> tuple[bool, Any]:
        self._client()
        old = await self._delete(keys=[self._hash(index)], args=[key])
        return (False, None) if old is None else (True, msgspec.json.decode(old))

    async def update(self, index: str, key: str, ops: list[UpdateOp]) -> tuple[bool, Any, Any]:
        redis = self._client()
        name = self._hash(index)
        lock_key = (index, key)
        lock = self._locks.enter(lock_key)
        try:
            async with lock, redis.pipeline(transaction=True) as pipe:
                for _attempt in range(self.config.max_update_retries):
                    try:
                        await pipe.watch(name)
                        raw = await pipe.hget(name, key)  # type: ignore[misc]
                        exists = raw is not None
                        old = msgspec.json.decode(cast("bytes", raw)) if exists else None
                        new = apply_ops(old, exists, ops)
                        pipe.multi()
                        pipe.hset(name, key, self._encode(new))
                        await pipe.execute()
                        return exists, old, new
                    except WatchError:
                        continue
                raise StoreError(
                    f"update of {index}/{key} conflicted with other writers "
                    f"{self.config.max_update_retries} times"
                )
        finally:
            self._locks.release(lock_key)

    async def list(self, index: str) -> list[Any]:
        values = await self._client().hvals(self._hash(index))  # type: ignore[misc]
        return [msgspec.json.decode(v) for v in values]

    async def list_groups(self, prefix: str = "") -> builtins.list[str]:
        redis = self._client()
        start = len(self.config.key_prefix)
        pattern = _glob_escape(self.config.key_prefix + prefix) + "*"
        groups = {name[start:] async for name in redis.scan_iter(match=pattern, count=1000)}
        return sorted(groups)

    def _encode(self, value: Any) -> str:
        try:
            encoded = msgspec.json.encode(value)
        except (TypeError, OverflowError) as exc:
            raise StoreError(f"the value cannot be stored as JSON: {exc}") from exc
        if len(encoded) > self.config.max_value_bytes:
            raise StoreError(
                f"the value is {len(encoded)} bytes, more than 'max_value_bytes' "
                f"({self.config.max_value_bytes})"
            )
        return encoded.decode()


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a scope name matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
