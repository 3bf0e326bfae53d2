"""The Redis adapter: items in Redis hashes, envelopes fanned out over Redis pub/sub.

Several engines sharing one Redis serve the same streams: a write through any engine is
published on the channel ``stream::events`` and every engine (the writer included) delivers it to
its own WebSocket clients.  Keys follow the reference: one hash per group, ``stream:<name>:<group>``
(field = item id, value = JSON).  Two sets index them, so that listing never scans the keyspace:
``iii:stream:names`` and ``iii:stream:groups:<name>``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

import attrs
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from iii_core import ConfigError, structure
from iii_stream.adapter import EventSink, StreamAdapter

log = logging.getLogger("iii.stream.redis")

CHANNEL = "stream::events"
NAMES_KEY = "iii:stream:names"
CONNECT_TIMEOUT_S = 5.0

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# SET: store and index atomically, return the previous value.
_SET = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return old
"""

# DELETE: remove, drop the group (and stream) from the indexes when it became empty.
_DELETE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if redis.call('HLEN', KEYS[1]) == 0 then
    redis.call('SREM', KEYS[2], ARGV[2])
    if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
  end
end
return old
"""


@attrs.define(frozen=True)
class RedisAdapterConfig:
    redis_url: str = "redis://localhost:6379"


class RedisStreamAdapter(StreamAdapter):
    def __init__(self, config: dict[str, Any], where: str) -> None:
        self.config = structure(RedisAdapterConfig, config, where)
        check_url(self.config.redis_url, f"{where}.redis_url")
        self.where = where
        self._client: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sink: EventSink | None = None
        self._subscribed = asyncio.Event()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("the stream Redis adapter is not connected")
        return self._client

    async def start(self, sink: EventSink) -> None:
        client = aioredis.Redis.from_url(
            self.config.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S
        )
        try:
            await asyncio.wait_for(client.ping(), CONNECT_TIMEOUT_S)
        except Exception as exc:
            await client.aclose()
            raise ConfigError(
                f"{self.where}: cannot connect to Redis at {self.config.redis_url} "
                f"within {CONNECT_TIMEOUT_S:.0f} s: {exc}"
            ) from exc
        self._client = client
        self._sink = sink
        self._set = client.register_script(_SET)
        self._delete = client.register_script(_DELETE)
        self._reader = asyncio.create_task(self._read_events(), name="iii-stream redis events")
        # Writes made right after start-up must reach this engine's clients too.
        await asyncio.wait_for(self._subscribed.wait(), CONNECT_TIMEOUT_S)

    async def _read_events(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._subscribed.set()
                backoff = 0.1
                while True:
                    msg = await pubsub.get_message(timeout=None)
                    if msg is None or msg.get("type") != "message":
                        continue
                    payload: bytes = msg["data"]
                    try:
                        envelope = _decode(payload)
                    except msgspec.DecodeError:
                        log.warning("ignored a malformed envelope on %s", CHANNEL)
                        continue
                    if self._sink is not None and isinstance(envelope, dict):
                        self._sink(envelope, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect; clients keep their sockets
                log.warning("stream event subscription lost (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._sink = None

    @staticmethod
    def _key(stream: str, group: str) -> str:
        return f"stream:{stream}:{group}"

    @staticmethod
    def _groups_key(stream: str) -> str:
        return f"iii:stream:groups:{stream}"

    async def get(self, stream: str, group: str, item: str) -> Any:
        raw = await self.client.hget(self._key(stream, group), item)
        return None if raw is None else _decode(raw)

    async def set(self, stream: str, group: str, item: str, value: Any) -> Any:
        old = await self._set(
            keys=[self._key(stream, group), self._groups_key(stream), NAMES_KEY],
            args=[item, _encode(value), group, stream],
        )
        return None if old is None else _decode(old)

    async def delete(self, stream: str, group: str, item: str) -> Any:
        old = await self._delete(
            keys=[self._key(stream, group), self._groups_key(stream), NAMES_KEY],
            args=[item, group, stream],
        )
        return None if old is None else _decode(old)

    async def update(
        self, stream: str, group: str, item: str, apply: Callable[[Any], Any]
    ) -> tuple[Any, Any]:
        key = self._key(stream, group)
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, item)
                    old = None if raw is None else _decode(raw)
                    new = apply(old)
                    pipe.multi()
                    pipe.hset(key, item, _encode(new))
                    pipe.sadd(self._groups_key(stream), group)
                    pipe.sadd(NAMES_KEY, stream)
                    await pipe.execute()
                    return old, new
                except WatchError:
                    continue  # another engine wrote the item meanwhile: re-read and re-apply

    async def list(self, stream: str, group: str) -> list[Any]:
        values = await self.client.hvals(self._key(stream, group))
        return [_decode(v) for v in values]

    async def list_groups(self, stream: str) -> builtins.list[str]:
        groups = cast("set[bytes]", await self.client.smembers(self._groups_key(stream)))
        return sorted(g.decode() for g in groups)

    async def list_all(self) -> dict[str, builtins.list[str]]:
        members = cast("set[bytes]", await self.client.smembers(NAMES_KEY))
        names = sorted(n.decode() for n in members)
        out: dict[str, list[str]] = {}
        for name in names:
            groups = await self.list_groups(name)
            if groups:
                out[name] = groups
        return out

    async def publish(self, envelope: dict[str, Any], payload: bytes) -> None:
        await self.client.publish(CHANNEL, payload)


def check_url(url: Any, where: str) -> None:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{where}: redis_url must be a redis:// URL, got {url!r}")
