"""Shared helpers: engine configs for both queue adapters, and a handler that records calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

MEMORY = {"class": "modules::queue::BuiltinQueueAdapter", "config": {"path": ":memory:"}}


@pytest.fixture(params=["sqlite", "redis"])
def adapter(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """The ``adapter:`` mapping of the queue module, for each built-in adapter."""
    if request.param == "sqlite":
        return {
            "class": "modules::queue::BuiltinQueueAdapter",
            "config": {"path": str(tmp_path / "queue.db")},
        }
    url = request.getfixturevalue("redis_url")
    return {"class": "adapters::redis::RedisQueueAdapter", "config": {"redis_url": url}}


def queue_config(adapter: dict[str, Any] | None, **module: Any) -> dict[str, Any]:
    config: dict[str, Any] = dict(module)
    if adapter is not None:
        config["adapter"] = adapter
    config.setdefault("poll_interval_ms", 20)
    return {"modules": [{"class": "modules::queue::QueueModule", "config": config}]}


class Recorder:
    """A worker-side handler that records each call and its timing, optionally failing."""

    def __init__(self, delay: float = 0.0, fail_times: int = 0) -> None:
        self.calls: list[Any] = []
        self.times: list[float] = []
        self.delay = delay
        self.fail_times = fail_times
        self.running = 0
        self.max_running = 0

    async def __call__(self, data: Any) -> Any:
        self.calls.append(data)
        self.times.append(time.monotonic())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_times and len(self.calls) <= self.fail_times:
                raise RuntimeError(f"failure {len(self.calls)}")
            return {"ok": True}
        finally:
            self.running -= 1
