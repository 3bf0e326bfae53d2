"""``modules::pubsub::PubSubModule``: the ``publish`` function and ``subscribe`` trigger type.

Fan-out, not a queue: every subscriber gets every message, each in its own fire-and-forget
call; nothing is stored.  With the Redis adapter every engine subscribed to a topic receives the
messages published by any engine.  Unsubscribing a trigger removes only that trigger (the
reference removed every subscription on the topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import msgspec
import redis.asyncio as aioredis

from iii_core import CallContext, ConfigError, Module, Trigger, structure
from iii_core.engine import Engine
from iii_core.errors import InvocationError

log = logging.getLogger("iii.pubsub")

WHERE = "modules::pubsub::PubSubModule config"
LOCAL_ADAPTER = "modules::pubsub::LocalAdapter"

Deliver = Callable[[str, Any, str | None, str | None], None]
"""``(topic, data, traceparent, baggage)``: hand a message to the local subscribers."""


class PubSubAdapter(Protocol):
    """Carries published messages to every engine's :data:`Deliver` callback."""

    async def connect(self, deliver: Deliver) -> None: ...

    async def close(self) -> None: ...

    async def publish(
        self, topic: str, data: Any, traceparent: str | None, baggage: str | None
    ) -> None: ...

    async def subscribe(self, topic: str) -> None: ...

    async def unsubscribe(self, topic: str) -> None: ...


class LocalPubSubAdapter:
    """In-process fan-out (the default)."""

    def __init__(self, config: dict[str, Any] | None = None, where: str = "") -> None:
        if config:
            raise ConfigError(f"{where}: the local pub/sub adapter takes no config, got {config!r}")
        self._deliver: Deliver | None = None

    async def connect(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        self._deliver = None

    async def publish(
        self, topic: str, data: Any, traceparent: str | None, baggage: str | None
    ) -> None:
        if self._deliver is not None:
            self._deliver(topic, data, traceparent, baggage)

    async def subscribe(self, topic: str) -> None:
        """Local delivery needs no subscription."""

    async def unsubscribe(self, topic: str) -> None:
        """Local delivery needs no subscription."""


@attrs.define(frozen=True)
class RedisPubSubConfig:
    redis_url: str = "redis://localhost:6379"
    connect_timeout_ms: int = 5000


class RedisPubSubAdapter:
    """Redis ``PUBLISH``/``SUBSCRIBE`` on channel ``<topic>`` with the reference's envelope
    ``{"__trace": {"traceparent", "baggage"}, "data": ...}``."""

    def __init__(self, config: dict[str, Any] | None = None, where: str = "") -> None:
        self.config = structure(RedisPubSubConfig, config, where)
        self._where = where
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._deliver: Deliver | None = None

    async def connect(self, deliver: Deliver) -> None:
        client = aioredis.Redis.from_url(
            self.config.redis_url, socket_connect_timeout=self.config.connect_timeout_ms / 1000
        )
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            raise ConfigError(
                f"{self._where}: cannot connect to Redis at {self.config.redis_url}: {exc}"
            ) from exc
        self._redis = client
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._deliver = deliver
        self._reader = asyncio.create_task(self._read(), name="pubsub redis reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()
        self._redis = self._pubsub = self._reader = None

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("pub/sub: reading from Redis failed: %s", exc)
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))
                continue
            if msg is None or msg.get("type") != "message" or self._deliver is None:
                continue
            channel = msg["channel"]
            topic = channel.decode() if isinstance(channel, bytes) else str(channel)
            try:
                payload = msgspec.json.decode(msg["data"])
            except msgspec.DecodeError:
                log.warning("pub/sub: message on %s is not JSON, dropped", topic)
                continue
            traceparent = baggage = None
            if (
                isinstance(payload, dict)
                and isinstance(payload.get("__trace"), dict)
                and ("data" in payload)
            ):
                trace = payload["__trace"]
                traceparent, baggage = trace.get("traceparent"), trace.get("baggage")
                payload = payload["data"]
            self._deliver(topic, payload, traceparent, baggage)

    async def publish(
        self, topic: str, data: Any, traceparent: str | None, baggage: str | None
    ) -> None:
        assert self._redis is not None
        envelope = {"__trace": {"traceparent": traceparent, "baggage": baggage}, "data": data}
        await self._redis.publish(topic, msgspec.json.encode(envelope))

    async def subscribe(self, topic: str) -> None:
        await self._pubsub.subscribe(topic)

    async def unsubscribe(self, topic: str) -> None:
        await self._pubsub.unsubscribe(topic)


class PubSubModule(Module):
    """``publish`` and ``subscribe`` over a :class:`PubSubAdapter`."""

    name = "PubSubModule"

    @attrs.define(frozen=True)
    class Config:
        """``adapter``: ``{class, config}`` (default ``modules::pubsub::LocalAdapter``)."""

        adapter: dict[str, Any] | None = None

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = structure(PubSubModule.Config, config, WHERE)
        self.adapter: PubSubAdapter = engine.plugins.create_adapter(
            "pubsub", self.config.adapter, WHERE, default_class=LOCAL_ADAPTER
        )
        self.subscriptions: dict[str, dict[str, str]] = {}
        """topic -> trigger id -> function id (bounded by the trigger registry)."""
        self.published_total = 0

    async def initialize(self) -> None:
        await self.adapter.connect(self._deliver)
        self.engine.register_function(
            "publish", self.publish, description="Publish {topic, data} to every subscriber"
        )
        await self.engine.register_trigger_type("subscribe", "Pub/sub subscription", self)

    async def shutdown(self) -> None:
        await self.adapter.close()

    def gauges(self) -> dict[str, int]:
        return {
            "pubsub_topics": len(self.subscriptions),
            "pubsub_subscriptions": sum(len(s) for s in self.subscriptions.values()),
        }

    def _deliver(self, topic: str, data: Any, traceparent: str | None, baggage: str | None) -> None:
        for function_id in list(self.subscriptions.get(topic, {}).values()):
            self.engine.call_void(function_id, data, traceparent=traceparent, baggage=baggage)

    async def publish(self, data: Any, ctx: CallContext) -> None:
        if not isinstance(data, dict) or "topic" not in data or "data" not in data:
            raise InvocationError(
                "publish expects {topic: string, data: any}", code="deserialization_error"
            )
        topic = data["topic"]
        if not isinstance(topic, str):
            raise InvocationError("topic must be a string", code="deserialization_error")
        if not topic:
            raise InvocationError("Topic is not set", code="topic_not_set")
        try:
            await self.adapter.publish(topic, data["data"], ctx.traceparent, ctx.baggage)
        except Exception as exc:
            raise InvocationError(f"publish failed: {exc}", code="publish_failed") from exc
        self.published_total += 1

    async def register_trigger(self, trigger: Trigger) -> None:
        config = trigger.config
        topic = config.get("topic") if isinstance(config, dict) else None
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"subscribe trigger config needs a non-empty 'topic', got {config!r}")
        subs = self.subscriptions.setdefault(topic, {})
        if not subs:
            await self.adapter.subscribe(topic)
        subs[trigger.id] = trigger.function_id

    async def unregister_trigger(self, trigger: Trigger) -> None:
        config = trigger.config
        topic = config.get("topic") if isinstance(config, dict) else None
        subs = self.subscriptions.get(topic) if isinstance(topic, str) else None
        if subs is None or subs.pop(trigger.id, None) is None:
            return
        if not subs:
            del self.subscriptions[topic]  # type: ignore[arg-type]
            await self.adapter.unsubscribe(topic)  # type: ignore[arg-type]
