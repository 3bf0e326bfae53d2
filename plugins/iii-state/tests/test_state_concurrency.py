"""Updates are atomic: two workers incrementing one key concurrently lose no increment."""

from __future__ import annotations

import asyncio
from typing import Any

from iii_core.testing import RawWorker, raw_worker

PER_WORKER = 1000
WINDOW = 100  # calls in flight per worker at a time


async def increment_many(worker: RawWorker, count: int) -> None:
    update = {
        "scope": "counters",
        "key": "shared",
        "ops": [{"type": "increment", "path": "n", "by": 1}],
    }
    for start in range(0, count, WINDOW):
        batch = min(WINDOW, count - start)
        results = await asyncio.gather(
            *(worker.call("state::update", update, timeout=60) for _ in range(batch))
        )
        assert all(isinstance(r["new_value"]["n"], int) for r in results)


async def test_two_workers_increment_to_2000(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        await asyncio.gather(increment_many(a, PER_WORKER), increment_many(b, PER_WORKER))
        value = await a.call("state::get", {"scope": "counters", "key": "shared"})
        assert value == {"n": 2 * PER_WORKER}


async def test_concurrent_sets_report_each_old_value_once(state_engine: Any) -> None:
    """Each set sees the value the previous set wrote: old values form one chain."""
    async with state_engine() as engine, raw_worker(engine) as w:
        target = {"scope": "chain", "key": "k"}
        results = await asyncio.gather(
            *(w.call("state::set", {**target, "value": i}) for i in range(200))
        )
        olds = [r["old_value"] for r in results]
        assert olds.count(None) == 1
        assert sorted(o for o in olds if o is not None) == sorted(
            set(range(200)) - {await w.call("state::get", target)}
        )


async def test_two_engines_sharing_one_store_lose_no_update(
    engine_factory: Any, adapter_config: dict[str, Any], tmp_path: Any
) -> None:
    """Atomic across processes too: Redis WATCH/MULTI, SQLite ``BEGIN IMMEDIATE``."""
    adapter = adapter_config
    if adapter["class"].endswith("KvStore"):
        adapter = {"class": adapter["class"], "config": {"path": str(tmp_path / "shared.db")}}
    config = {"modules": [{"class": "modules::state::StateModule", "config": {"adapter": adapter}}]}
    async with (
        engine_factory(config) as one,
        engine_factory(config) as two,
        raw_worker(one) as a,
        raw_worker(two) as b,
    ):
        await asyncio.gather(increment_many(a, 300), increment_many(b, 300))
        assert await a.call("state::get", {"scope": "counters", "key": "shared"}) == {"n": 600}
