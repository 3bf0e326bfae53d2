"""iii queue and pub/sub modules: durable queues with retries and dead letters, and fan-out."""

from iii_queue.adapter import QueueAdapter
from iii_queue.job import DeadLetter, Job
from iii_queue.module import QueueModule
from iii_queue.pubsub import PubSubModule
from iii_queue.redis_adapter import RedisQueueAdapter
from iii_queue.sqlite_adapter import SqliteQueueAdapter

__all__ = [
    "DeadLetter",
    "Job",
    "PubSubModule",
    "QueueAdapter",
    "QueueModule",
    "RedisQueueAdapter",
    "SqliteQueueAdapter",
]
