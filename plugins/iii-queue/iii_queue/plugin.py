"""The ``iii`` plugin of the distribution: module and adapter classes, and the stop hook."""

from __future__ import annotations

from typing import Any

from iii_core import AdapterSpec, Engine, ModuleSpec, hookimpl
from iii_queue.module import QueueModule
from iii_queue.pubsub import LocalPubSubAdapter, PubSubModule, RedisPubSubAdapter
from iii_queue.redis_adapter import RedisQueueAdapter
from iii_queue.sqlite_adapter import SqliteQueueAdapter


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::queue::QueueModule",),
            factory=QueueModule,
            default=True,
            description="Durable queues: enqueue, queue triggers, retries, dead letters",
        ),
        ModuleSpec(
            class_names=("modules::pubsub::PubSubModule",),
            factory=PubSubModule,
            default=True,
            description="Pub/sub fan-out: publish, subscribe triggers",
        ),
    ]


@hookimpl
def iii_adapter_specs() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            kind="queue",
            class_names=(
                "modules::queue::BuiltinQueueAdapter",
                "adapters::sqlite::SqliteQueueAdapter",
            ),
            factory=SqliteQueueAdapter,
            default=True,
            description="Embedded SQLite file (default ./data/queue.db)",
        ),
        AdapterSpec(
            kind="queue",
            class_names=("adapters::redis::RedisQueueAdapter", "modules::queue::RedisAdapter"),
            factory=RedisQueueAdapter,
            description="Durable queue in Redis",
        ),
        AdapterSpec(
            kind="pubsub",
            class_names=("modules::pubsub::LocalAdapter",),
            factory=LocalPubSubAdapter,
            default=True,
            description="In-process fan-out",
        ),
        AdapterSpec(
            kind="pubsub",
            class_names=("modules::pubsub::RedisAdapter", "adapters::redis::RedisPubSubAdapter"),
            factory=RedisPubSubAdapter,
            description="Redis PUBLISH/SUBSCRIBE fan-out across engines",
        ),
    ]


@hookimpl
def iii_engine_stopping(engine: Engine) -> Any:
    """Stop claiming queue jobs as soon as shutdown begins, so that the grace period only lets
    the jobs in flight finish."""
    for module in engine.modules:
        if isinstance(module, QueueModule):
            module.stop_consuming()
