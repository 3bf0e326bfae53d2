"""Provide a custom trigger type ("ticker") that calls its functions on an interval.

python examples/python-sdk/trigger_type.py
"""

from __future__ import annotations

import asyncio

import iii_worker
from iii_worker import TriggerConfig


class Ticker:
    """Starts one asyncio task per trigger; each calls the trigger's function every N seconds."""

    def __init__(self, worker: iii_worker.Worker) -> None:
        self.worker = worker
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def register_trigger(self, trigger: TriggerConfig) -> None:
        interval = float(trigger.config["every_s"])  # a bad config rejects the trigger
        self.tasks[trigger.id] = asyncio.create_task(self._tick(trigger, interval))

    async def unregister_trigger(self, trigger: TriggerConfig) -> None:
        task = self.tasks.pop(trigger.id, None)
        if task is not None:
            task.cancel()

    async def _tick(self, trigger: TriggerConfig, interval: float) -> None:
        n = 0
        while True:
            await asyncio.sleep(interval)
            n += 1
            await self.worker.call_void(trigger.function_id, {"tick": n})


async def main() -> None:
    async with iii_worker.connect(name="ticker-example") as worker:
        ticks: asyncio.Queue[int] = asyncio.Queue()
        worker.register_trigger_type("ticker", "Calls a function every_s seconds", Ticker(worker))

        async def on_tick(data: dict[str, int]) -> None:
            ticks.put_nowait(data["tick"])

        worker.register_function("examples.on_tick", on_tick)
        trigger = worker.register_trigger("ticker", "examples.on_tick", {"every_s": 0.2})
        for _ in range(3):
            print("tick", await asyncio.wait_for(ticks.get(), 10))
        trigger.unregister()


if __name__ == "__main__":
    asyncio.run(main())
