"""``modules::queue::QueueModule``: the ``enqueue`` function, the ``queue`` trigger type, the
``enqueue`` invocation action and the dead-letter functions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from iii_core import CallContext, ConfigError, Module, Trigger, structure
from iii_core.engine import Engine
from iii_core.errors import FunctionNotFound, InvocationError
from iii_core.tasks import OwnedTasks
from iii_queue.adapter import QueueAdapter
from iii_queue.consumer import Consumer
from iii_queue.job import Job, new_job_id, now_ms
from iii_queue.settings import QueueModuleConfig, QueueSettings, apply_queue_config

log = logging.getLogger("iii.queue")

WHERE = "modules::queue::QueueModule config"
SQLITE_ADAPTER = "modules::queue::BuiltinQueueAdapter"
NAMED_PREFIX = "queue::"
"""Store topic of the named queue ``default`` is ``queue::default`` (``action: enqueue``)."""

DLQ_LIMIT_MAX = 1000


def _bad(message: str, code: str = "invalid_input") -> InvocationError:
    return InvocationError(message, code=code)


class QueueModule(Module):
    """Durable queues over a pluggable :class:`~iii_queue.adapter.QueueAdapter`."""

    name = "QueueModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = structure(QueueModuleConfig, config, WHERE)
        raw_defaults = self.config.defaults
        self.defaults = structure(QueueSettings, raw_defaults, f"{WHERE}: defaults").check(
            f"{WHERE}: defaults"
        )
        self.queue_settings: dict[str, QueueSettings] = {}
        for name, raw in self.config.queues.items():
            where = f"{WHERE}: queues.{name}"
            self.queue_settings[name] = structure(
                QueueSettings, {**raw_defaults, **raw}, where
            ).check(where)
        if self.config.poll_interval_ms < 1:
            raise ConfigError(f"{WHERE}: poll_interval_ms must be >= 1")
        self.adapter: QueueAdapter = engine.plugins.create_adapter(
            "queue", self.config.adapter, WHERE, default_class=SQLITE_ADAPTER
        )
        self.consumers: dict[str, Consumer] = {}
        self.named: dict[str, Consumer] = {}
        self._by_topic: dict[str, list[Consumer]] = {}
        self._tasks = OwnedTasks("queue")
        self._unlisted_logged: set[str] = set()
        self._consuming = True
        self.enqueued_total = 0
        self.handled_total = 0
        self.retried_total = 0
        self.dead_total = 0

    # ------------------------------------------------------------------ life cycle

    async def initialize(self) -> None:
        await self.adapter.connect()
        e = self.engine
        e.register_function(
            "enqueue", self.enqueue, description="Enqueue {topic, data} for the topic's triggers"
        )
        e.register_function(
            "queue::dlq::list",
            self.dlq_list,
            description="Dead letters of {topic|queue, offset?, limit?}: {messages, total}",
        )
        e.register_function(
            "queue::dlq::count",
            self.dlq_count,
            description="Dead letters of {topic|queue}: {count}",
        )
        e.register_function(
            "queue::dlq::redrive",
            self.dlq_redrive,
            description="Requeue dead letters of {topic|queue} (all, or {ids}): {redriven}",
        )
        e.register_function(
            "queue::dlq::discard",
            self.dlq_discard,
            description="Delete dead letters of {topic|queue} (all, or {ids}): {discarded}",
        )
        e.register_function(
            "queue::stats", self.stats, description="{waiting, active, dead} of {topic|queue}"
        )
        await e.register_trigger_type("queue", "Durable queue consumer of a topic", self)
        e.register_action("enqueue", self.enqueue_action)
        # Named queues hold jobs for functions, not triggers: resume those left by a previous run.
        for topic in await self.adapter.topics():
            if topic.startswith(NAMED_PREFIX):
                self._named_consumer(topic[len(NAMED_PREFIX) :])

    def stop_consuming(self) -> None:
        """Engine shutdown began: claim nothing new (jobs in flight may still finish)."""
        self._consuming = False
        for consumer in self._all_consumers():
            consumer.stop()

    async def shutdown(self) -> None:
        self.stop_consuming()
        # Handler calls were stopped by the engine; give their release/ack a moment.
        await self._tasks.wait(timeout=2.0)
        await self._tasks.cancel_all(timeout=1.0)
        await self.adapter.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None) -> asyncio.Future[Any]:
        """Run a task this module owns (cancelled at shutdown)."""
        return self._tasks.spawn(coro, name)

    def _all_consumers(self) -> list[Consumer]:
        return [*self.consumers.values(), *self.named.values()]

    def wake(self, topic: str) -> None:
        for consumer in self._by_topic.get(topic, ()):
            consumer.wake.set()

    def gauges(self) -> dict[str, int]:
        """Sizes of the module's in-memory state (every one bounded)."""
        return {
            "queue_consumers": len(self.consumers),
            "queue_named_queues": len(self.named),
            "queue_inflight": sum(len(c.inflight) for c in self._all_consumers()),
            "queue_tasks": len(self._tasks),
        }

    # ------------------------------------------------------------------ settings

    def settings_for(self, name: str) -> QueueSettings:
        return self.queue_settings.get(name, self.defaults)

    def _add_consumer(self, consumer: Consumer) -> None:
        self._by_topic.setdefault(consumer.topic, []).append(consumer)
        if self._consuming:
            consumer.start()

    def _remove_consumer(self, consumer: Consumer) -> None:
        consumer.stop()
        peers = self._by_topic.get(consumer.topic, [])
        if consumer in peers:
            peers.remove(consumer)
        if not peers:
            self._by_topic.pop(consumer.topic, None)

    def _named_consumer(self, queue: str) -> Consumer:
        consumer = self.named.get(queue)
        if consumer is not None:
            return consumer
        if len(self.named) >= self.config.max_named_queues:
            raise _bad(
                f"too many named queues (max_named_queues={self.config.max_named_queues})",
                "too_many_queues",
            )
        if queue not in self.queue_settings and queue not in self._unlisted_logged:
            self._unlisted_logged.add(queue)
            log.info("queue %r is not listed in the queue module's 'queues'; using defaults", queue)
        consumer = Consumer(
            self, NAMED_PREFIX + queue, self.settings_for(queue), label=f"{NAMED_PREFIX}{queue}"
        )
        self.named[queue] = consumer
        self._add_consumer(consumer)
        return consumer

    # ------------------------------------------------------------------ trigger type

    async def register_trigger(self, trigger: Trigger) -> None:
        config = trigger.config
        if not isinstance(config, dict):
            raise ValueError(
                f"queue trigger config must be an object with a 'topic', got {config!r}"
            )
        topic = config.get("topic")
        if not isinstance(topic, str) or not topic:
            log.warning(
                "queue trigger %s for %s has no topic: accepted but inactive",
                trigger.id,
                trigger.function_id,
            )
            return
        where = f"queue trigger {trigger.id} ({topic})"
        settings = apply_queue_config(self.settings_for(topic), config.get("queue_config"), where)
        consumer = Consumer(
            self, topic, settings, function_id=trigger.function_id, config=config, label=topic
        )
        self.consumers[trigger.id] = consumer
        self._add_consumer(consumer)

    async def unregister_trigger(self, trigger: Trigger) -> None:
        consumer = self.consumers.pop(trigger.id, None)
        if consumer is not None:
            self._remove_consumer(consumer)

    # ------------------------------------------------------------------ producing

    def _delay(self, topic: str, settings: QueueSettings, extra: int) -> int:
        delay = max(settings.delay_ms, extra)
        for consumer in self._by_topic.get(topic, ()):
            delay = max(delay, consumer.settings.delay_ms)
        return delay

    async def _push(self, job: Job, delay_ms: int) -> None:
        try:
            await self.adapter.push(job, job.created_at + delay_ms)
        except Exception as exc:
            raise _bad(f"could not store the message: {exc}", "enqueue_failed") from exc
        self.enqueued_total += 1
        self.wake(job.topic)

    async def enqueue(self, data: Any, ctx: CallContext) -> None:
        """``{topic, data, group_id?, delay_ms?}``: store a message for the topic's triggers."""
        if not isinstance(data, dict) or "topic" not in data or "data" not in data:
            raise _bad(
                "enqueue expects {topic: string, data: any} (both required)",
                "deserialization_error",
            )
        topic = data["topic"]
        if not isinstance(topic, str):
            raise _bad("topic must be a string", "deserialization_error")
        if not topic:
            raise _bad("Topic is not set", "topic_not_set")
        group_id = data.get("group_id", "default")
        if not isinstance(group_id, str) or not group_id:
            raise _bad("group_id must be a non-empty string", "deserialization_error")
        extra = data.get("delay_ms", 0)
        if not isinstance(extra, int) or isinstance(extra, bool) or extra < 0:
            raise _bad("delay_ms must be an integer >= 0", "deserialization_error")
        job = Job(
            new_job_id(),
            topic,
            data["data"],
            group_id=group_id,
            created_at=now_ms(),
            traceparent=ctx.traceparent,
            baggage=ctx.baggage,
        )
        await self._push(job, self._delay(topic, self.settings_for(topic), extra))

    async def enqueue_action(
        self, function_id: str, data: Any, action: dict[str, Any], ctx: CallContext
    ) -> dict[str, str]:
        """``invokefunction`` with ``action: {type: "enqueue", queue}``: the call is stored in the
        named queue and ``{messageReceiptId}`` returned at once; the queue's consumer calls the
        function later with the same ``data``."""
        queue = action.get("queue") or "default"
        if not isinstance(queue, str):
            raise _bad(f"action.queue must be a string, got {queue!r}")
        group_id = action.get("group_id") or action.get("messageGroupId") or "default"
        if not isinstance(group_id, str):
            raise _bad(f"action group id must be a string, got {group_id!r}")
        if self.engine.functions.get(function_id) is None and not (
            self.engine.router.remote_router is not None
            and self.engine.router.remote_router.has_function(function_id)
        ):
            raise FunctionNotFound(f"Function {function_id} not found")
        if isinstance(data, dict):
            data.pop("_caller_worker_id", None)
        consumer = self._named_consumer(queue)
        job = Job(
            new_job_id(),
            consumer.topic,
            data,
            group_id=group_id,
            created_at=now_ms(),
            function_id=function_id,
            traceparent=ctx.traceparent,
            baggage=ctx.baggage,
        )
        await self._push(job, self._delay(consumer.topic, consumer.settings, 0))
        return {"messageReceiptId": job.id}

    # ------------------------------------------------------------------ dead letters

    @staticmethod
    def _topic_of(data: Any) -> str:
        if isinstance(data, dict):
            topic, queue = data.get("topic"), data.get("queue")
            if isinstance(topic, str) and topic:
                return topic
            if isinstance(queue, str) and queue:
                return NAMED_PREFIX + queue
        raise _bad("expected {topic: string} or {queue: string}", "topic_not_set")

    @staticmethod
    def _ids_of(data: dict[str, Any]) -> list[str] | None:
        ids = data.get("ids")
        if ids is None:
            return None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _bad("ids must be a list of message ids")
        return ids

    async def dlq_list(self, data: Any, ctx: CallContext) -> dict[str, Any]:
        topic = self._topic_of(data)
        offset = data.get("offset", 0)
        limit = data.get("limit", 100)
        for name, value in (("offset", offset), ("limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _bad(f"{name} must be an integer >= 0")
        letters = await self.adapter.dlq_list(topic, offset, min(limit, DLQ_LIMIT_MAX))
        return {
            "messages": [letter.info() for letter in letters],
            "total": await self.adapter.dlq_count(topic),
        }

    async def dlq_count(self, data: Any, ctx: CallContext) -> dict[str, int]:
        return {"count": await self.adapter.dlq_count(self._topic_of(data))}

    async def dlq_redrive(self, data: Any, ctx: CallContext) -> dict[str, int]:
        topic = self._topic_of(data)
        count = await self.adapter.dlq_redrive(topic, self._ids_of(data), now_ms())
        if topic.startswith(NAMED_PREFIX):
            self._named_consumer(topic[len(NAMED_PREFIX) :])
        self.wake(topic)
        return {"redriven": count}

    async def dlq_discard(self, data: Any, ctx: CallContext) -> dict[str, int]:
        topic = self._topic_of(data)
        return {"discarded": await self.adapter.dlq_discard(topic, self._ids_of(data))}

    async def stats(self, data: Any, ctx: CallContext) -> dict[str, int]:
        return await self.adapter.counts(self._topic_of(data))
