"""The Redis queue adapter: durable jobs in Redis, every operation one Lua script (atomic).

Keys per topic (the ``{topic}`` hash tag keeps them in one cluster slot)::

    iii:queue:{topic}:jobs      hash   id -> job document
    iii:queue:{topic}:ready     zset   id -> visible_at (ms); ties sort by the time-ordered id
    iii:queue:{topic}:active    zset   id -> lease_until (ms)
    iii:queue:{topic}:lease     hash   id -> lease token of the current claim
    iii:queue:{topic}:g:<group> list   unfinished ids of a message group, oldest first (FIFO)
    iii:queue:{topic}:groups    set    groups with unfinished jobs
    iii:queue:{topic}:dead      zset   id -> failed_at (ms)
    iii:queue:{topic}:dlq       hash   id -> dead letter document
    iii:queue:topics            set    every topic ever pushed to

Unlike the reference's Redis adapter (plain pub/sub), nothing is lost while no consumer is
running, and a message is deleted only by ``ack`` or a dead-letter discard.  Durability across a
Redis crash is Redis's own: run it with ``appendonly yes`` (``appendfsync always`` to lose nothing
acknowledged to a producer).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import attrs
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from iii_core import structure
from iii_core.errors import ConfigError
from iii_queue.job import DeadLetter, Job, decode_dead_letter, decode_job

TOPICS_KEY = "iii:queue:topics"

_PUSH = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('RPUSH', ARGV[5] .. 'g:' .. ARGV[4], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[6])
return 1
"""

_CLAIM = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZADD', KEYS[2], now, id)
end
local ids = {}
if ARGV[5] == '1' then
  local groups = redis.call('SMEMBERS', KEYS[5])
  for _, g in ipairs(groups) do
    if #ids >= limit then break end
    local head = redis.call('LINDEX', ARGV[6] .. 'g:' .. g, 0)
    if not head then
      redis.call('SREM', KEYS[5], g)
    else
      local score = redis.call('ZSCORE', KEYS[2], head)
      if score and tonumber(score) <= now then ids[#ids + 1] = head end
    end
  end
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
end
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local body = redis.call('HGET', KEYS[1], id)
  if body then
    redis.call('ZADD', KEYS[3], ARGV[3], id)
    redis.call('HSET', KEYS[4], id, ARGV[4])
    out[#out + 1] = body
  end
end
return out
"""

_EXTEND = """
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    n = n + 1
  end
end
return n
"""

_ACK = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('LREM', ARGV[3], 1, ARGV[1])
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
"""

_DEAD = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('LREM', ARGV[5], 1, ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
return 1
"""

_REDRIVE = """
local n = 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], id)
    redis.call('HSET', KEYS[3], id, ARGV[i + 2])
    redis.call('ZADD', KEYS[4], ARGV[1], id)
    redis.call('RPUSH', ARGV[2] .. 'g:' .. ARGV[i + 1], id)
    redis.call('SADD', KEYS[5], ARGV[i + 1])
    n = n + 1
  end
end
return n
"""

_DISCARD = """
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], id)
    n = n + 1
  end
end
return n
"""


@attrs.define(frozen=True)
class RedisQueueConfig:
    """``redis_url``: the server; the engine fails at start-up when it cannot connect within
    ``connect_timeout_ms``."""

    redis_url: str = "redis://localhost:6379"
    connect_timeout_ms: int = 5000
    max_connections: int = 32
    """Connections in the pool; callers wait for a free one instead of opening more."""


class _Keys:
    """Key names of one topic."""

    __slots__ = ("active", "dead", "dlq", "groups", "jobs", "lease", "prefix", "ready")

    def __init__(self, topic: str) -> None:
        self.prefix = f"iii:queue:{{{topic}}}:"
        self.jobs = self.prefix + "jobs"
        self.ready = self.prefix + "ready"
        self.active = self.prefix + "active"
        self.lease = self.prefix + "lease"
        self.groups = self.prefix + "groups"
        self.dead = self.prefix + "dead"
        self.dlq = self.prefix + "dlq"

    def group(self, group_id: str) -> str:
        return f"{self.prefix}g:{group_id}"


class RedisQueueAdapter:
    """Implements :class:`~iii_queue.adapter.QueueAdapter` on Redis (redis-py asyncio)."""

    def __init__(self, config: dict[str, Any] | None = None, where: str = "redis adapter") -> None:
        self.config = structure(RedisQueueConfig, config, where)
        self._where = where
        self._redis: aioredis.Redis | None = None
        self._keys: dict[str, _Keys] = {}

    def keys(self, topic: str) -> _Keys:
        keys = self._keys.get(topic)
        if keys is None:
            if len(self._keys) > 10_000:
                self._keys.clear()
            keys = self._keys[topic] = _Keys(topic)
        return keys

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the Redis queue adapter is closed")
        return self._redis

    async def connect(self) -> None:
        timeout = self.config.connect_timeout_ms / 1000
        pool = aioredis.BlockingConnectionPool.from_url(
            self.config.redis_url,
            max_connections=self.config.max_connections,
            timeout=timeout,
            socket_connect_timeout=timeout,
        )
        client = aioredis.Redis(
            connection_pool=pool, retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3)
        )
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            raise ConfigError(
                f"{self._where}: cannot connect to Redis at {self.config.redis_url}: {exc}"
            ) from exc
        self._redis = client
        self._push = client.register_script(_PUSH)
        self._claim = client.register_script(_CLAIM)
        self._extend = client.register_script(_EXTEND)
        self._ack = client.register_script(_ACK)
        self._release = client.register_script(_RELEASE)
        self._dead = client.register_script(_DEAD)
        self._redrive = client.register_script(_REDRIVE)
        self._discard = client.register_script(_DISCARD)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def push(self, job: Job, visible_at: int) -> None:
        k = self.keys(job.topic)
        await self._push(
            keys=[k.jobs, k.ready, k.groups, TOPICS_KEY],
            args=[job.id, job.encode(), visible_at, job.group_id, k.prefix, job.topic],
        )

    async def claim(
        self, topic: str, *, limit: int, lease_until: int, fifo: bool, now: int
    ) -> list[Job]:
        k = self.keys(topic)
        lease = uuid.uuid4().hex
        bodies = await self._claim(
            keys=[k.jobs, k.ready, k.active, k.lease, k.groups],
            args=[now, limit, lease_until, lease, "1" if fifo else "0", k.prefix],
        )
        return [decode_job(body, lease) for body in bodies]

    async def extend(self, topic: str, leases: list[tuple[str, str]], lease_until: int) -> None:
        k = self.keys(topic)
        args: list[Any] = [lease_until]
        for job_id, lease in leases:
            args += [job_id, lease]
        await self._extend(keys=[k.active, k.lease], args=args)

    async def ack(self, job: Job) -> bool:
        k = self.keys(job.topic)
        done = await self._ack(
            keys=[k.jobs, k.active, k.lease], args=[job.id, job.lease, k.group(job.group_id)]
        )
        return bool(done)

    async def release(self, job: Job, visible_at: int) -> bool:
        k = self.keys(job.topic)
        done = await self._release(
            keys=[k.jobs, k.ready, k.active, k.lease],
            args=[job.id, job.lease, job.encode(), visible_at],
        )
        return bool(done)

    async def dead_letter(self, job: Job, error: str, failed_at: int) -> bool:
        k = self.keys(job.topic)
        done = await self._dead(
            keys=[k.jobs, k.active, k.lease, k.dead, k.dlq],
            args=[
                job.id,
                job.lease,
                DeadLetter(job, error, failed_at).encode(),
                failed_at,
                k.group(job.group_id),
            ],
        )
        return bool(done)

    async def topics(self) -> list[str]:
        members = cast("set[bytes]", await self.redis.smembers(TOPICS_KEY))
        return sorted(t.decode() for t in members)

    async def dlq_list(self, topic: str, offset: int, limit: int) -> list[DeadLetter]:
        k = self.keys(topic)
        ids = cast("list[bytes]", await self.redis.zrange(k.dead, offset, offset + limit - 1))
        if not ids:
            return []
        bodies = await self.redis.hmget(k.dlq, ids)
        return [decode_dead_letter(b) for b in bodies if b is not None]

    async def dlq_count(self, topic: str) -> int:
        return int(await self.redis.zcard(self.keys(topic).dead))

    async def _dead_letters(self, topic: str, ids: list[str] | None) -> list[DeadLetter]:
        k = self.keys(topic)
        if ids is None:
            ids = [i.decode() for i in cast("list[bytes]", await self.redis.zrange(k.dead, 0, -1))]
        if not ids:
            return []
        bodies = await self.redis.hmget(k.dlq, ids)
        return [decode_dead_letter(b) for b in bodies if b is not None]

    async def dlq_redrive(self, topic: str, ids: list[str] | None, now: int) -> int:
        k = self.keys(topic)
        args: list[Any] = [now, k.prefix]
        for letter in await self._dead_letters(topic, ids):
            job = letter.job
            job.attempts = 0
            args += [job.id, job.group_id, job.encode()]
        if len(args) == 2:
            return 0
        return int(await self._redrive(keys=[k.dead, k.dlq, k.jobs, k.ready, k.groups], args=args))

    async def dlq_discard(self, topic: str, ids: list[str] | None) -> int:
        k = self.keys(topic)
        if ids is None:
            ids = [i.decode() for i in cast("list[bytes]", await self.redis.zrange(k.dead, 0, -1))]
        if not ids:
            return 0
        return int(await self._discard(keys=[k.dead, k.dlq], args=ids))

    async def counts(self, topic: str) -> dict[str, int]:
        k = self.keys(topic)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.ready)
            pipe.zcard(k.active)
            pipe.zcard(k.dead)
            waiting, active, dead = await pipe.execute()
        return {"waiting": int(waiting), "active": int(active), "dead": int(dead)}
