"""Tasks with an owner: every task the engine or a module starts belongs to one ``OwnedTasks``.

The owner cancels what is left when it stops, a failed task is logged with its name (never left
unretrieved), and ``len()`` is the gauge of how many are running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger("iii.tasks")


class OwnedTasks:
    """A set of running tasks owned by one component (named in failure logs)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Looked up once: on Python 3.11 each get_running_loop is a getpid system call, and a
        # task is spawned for every call a worker makes to an in-process function.
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def spawn(
        self, coro: Coroutine[Any, Any, Any] | Awaitable[Any], name: str | None = None
    ) -> asyncio.Future[Any]:
        if isinstance(coro, Coroutine):
            task: asyncio.Future[Any] = self._running_loop().create_task(coro)
        else:
            task = asyncio.ensure_future(coro)
        if name and isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error("%s task %s failed: %s", self.owner, name, exc, exc_info=exc)

    async def wait(self, timeout: float) -> None:
        """Let running tasks finish, for at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def cancel_all(self, timeout: float = 5.0) -> None:
        """Cancel what is still running and wait (at most ``timeout`` s) for it to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)
