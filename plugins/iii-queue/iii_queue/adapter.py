"""The interface a queue adapter implements (the storage half of a durable queue).

The module owns the semantics (leases, retries, backoff, dead letters, FIFO groups, competing
consumers); an adapter only has to make each operation below atomic.  So a third-party adapter
(Postgres, SQS, ...) gets the same behaviour as the built-in ones by implementing this protocol
and declaring an ``AdapterSpec(kind="queue", ...)`` in its ``iii`` plugin.

Every time is a Unix epoch in milliseconds.  A *claim* gives the caller a lease token; ``ack``,
``release``, ``dead_letter`` and ``extend`` do nothing (and return False) unless the token still
matches, so a consumer whose lease lapsed cannot undo the work of the one that took over.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from iii_queue.job import DeadLetter, Job


@runtime_checkable
class QueueAdapter(Protocol):
    """Durable storage of jobs, leases and dead letters, per topic."""

    async def connect(self) -> None:
        """Open the store (called from ``initialize``); raise to abort engine start-up."""

    async def close(self) -> None:
        """Release connections (called from ``shutdown``)."""

    async def push(self, job: Job, visible_at: int) -> None:
        """Store ``job`` so that it can be claimed from ``visible_at`` on.  Once this returns the
        message survives a crash of the engine (the producer may consider it accepted)."""

    async def claim(
        self, topic: str, *, limit: int, lease_until: int, fifo: bool, now: int
    ) -> list[Job]:
        """Lease up to ``limit`` visible jobs until ``lease_until`` and return them (``lease`` set).

        Jobs whose previous lease lapsed before ``now`` are visible again.  ``fifo``: only the
        oldest unfinished job of each ``group_id`` may be claimed, and only when no job of that
        group is leased, so each group is handled in order, one job at a time.
        """
        ...

    async def extend(self, topic: str, leases: list[tuple[str, str]], lease_until: int) -> None:
        """Push the lease of each ``(job_id, lease)`` still held to ``lease_until``."""

    async def ack(self, job: Job) -> bool:
        """Delete a handled job."""
        ...

    async def release(self, job: Job, visible_at: int) -> bool:
        """Give a leased job back (storing its new ``attempts``), visible from ``visible_at``."""
        ...

    async def dead_letter(self, job: Job, error: str, failed_at: int) -> bool:
        """Move a leased job to the topic's dead-letter queue."""
        ...

    async def topics(self) -> list[str]:
        """Topics that hold jobs (so named queues resume after a restart)."""
        ...

    async def dlq_list(self, topic: str, offset: int, limit: int) -> list[DeadLetter]:
        """Dead letters of ``topic``, oldest first."""
        ...

    async def dlq_count(self, topic: str) -> int:
        """Number of dead letters of ``topic``."""
        ...

    async def dlq_redrive(self, topic: str, ids: list[str] | None, now: int) -> int:
        """Put dead letters (all, or those in ``ids``) back in the queue with ``attempts`` reset."""
        ...

    async def dlq_discard(self, topic: str, ids: list[str] | None) -> int:
        """Delete dead letters (all, or those in ``ids``)."""
        ...

    async def counts(self, topic: str) -> dict[str, int]:
        """``{"waiting": n, "active": n, "dead": n}`` for ``queue::stats``."""
        ...
