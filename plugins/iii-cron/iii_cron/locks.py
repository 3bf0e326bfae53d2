"""The lock a cron job takes before each tick, so that engines sharing a backend fire once.

An adapter (kind ``cron``) implements :class:`CronLock`.  ``acquire`` is called with the tick's
scheduled instant and returns a token when this engine may fire that tick, or None to skip it.
The token is handed back to ``release`` after the handler finished, whatever the outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class CronLock(Protocol):
    async def start(self) -> None:
        """Connect (called from the module's ``initialize``; raise to abort start-up)."""
        ...

    async def acquire(self, job_id: str, scheduled: datetime) -> str | None:
        """Claim tick ``scheduled`` of ``job_id``: a token, or None when it is not ours."""
        ...

    async def release(self, job_id: str, token: str) -> None:
        """Release the job's lock if ``token`` still holds it."""
        ...

    async def close(self) -> None:
        """Release connections (module shutdown)."""
        ...
