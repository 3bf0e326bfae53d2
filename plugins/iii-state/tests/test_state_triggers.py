"""The ``state`` trigger type: events, scope/key filters, conditions, errors, non-blocking."""

from __future__ import annotations

import asyncio
from typing import Any

from iii_state import StateModule

from iii_core.testing import RawWorker, raw_worker, wait_until


def module_of(engine: Any) -> StateModule:
    return next(m for m in engine.modules if isinstance(m, StateModule))


async def recorder(worker: RawWorker, function_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    async def handler(data: Any) -> None:
        events.append(data)

    await worker.register_function(function_id, handler)
    return events


async def wait_registered(engine: Any, count: int) -> None:
    await wait_until(lambda: len(module_of(engine).triggers.triggers) >= count, 10, "triggers")


async def test_events_for_set_update_delete(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        events = await recorder(w, "on_state")
        await w.register_trigger("state", "on_state", {})
        await wait_registered(engine, 1)
        await w.call("state::set", {"scope": "s", "key": "k", "value": {"a": 1}})
        await wait_until(lambda: len(events) == 1, 10, "created event")
        await w.call("state::set", {"scope": "s", "key": "k", "value": {"a": 2}})
        await wait_until(lambda: len(events) == 2, 10, "updated event")
        await w.call(
            "state::update",
            {"scope": "s", "key": "k", "ops": [{"type": "increment", "path": "a", "by": 1}]},
        )
        await wait_until(lambda: len(events) == 3, 10, "update event")
        await w.call(
            "state::update",
            {"scope": "s", "key": "new", "ops": [{"type": "set", "path": "x", "value": 1}]},
        )
        await wait_until(lambda: len(events) == 4, 10, "update events")
        await w.call("state::delete", {"scope": "s", "key": "k"})
        await wait_until(lambda: len(events) == 5, 10, "deleted event")
        strip = [{k: v for k, v in e.items() if k != "_caller_worker_id"} for e in events]
        base = {"type": "state", "scope": "s", "key": "k"}
        assert strip[0] == {
            **base,
            "event_type": "state:created",
            "old_value": None,
            "new_value": {"a": 1},
        }
        assert strip[1] == {
            **base,
            "event_type": "state:updated",
            "old_value": {"a": 1},
            "new_value": {"a": 2},
        }
        assert strip[2] == {
            **base,
            "event_type": "state:updated",
            "old_value": {"a": 2},
            "new_value": {"a": 3},
        }
        assert strip[3] == {
            **base,
            "key": "new",
            "event_type": "state:created",
            "old_value": None,
            "new_value": {"x": 1},
        }
        assert strip[4] == {
            **base,
            "event_type": "state:deleted",
            "old_value": {"a": 3},
            "new_value": None,
        }


async def test_scope_and_key_filters(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        all_events = await recorder(w, "all")
        scoped = await recorder(w, "scoped")
        keyed = await recorder(w, "keyed")
        exact = await recorder(w, "exact")
        await w.register_trigger("state", "all", {})
        await w.register_trigger("state", "scoped", {"scope": "orders"})
        await w.register_trigger("state", "keyed", {"key": "k1"})
        await w.register_trigger("state", "exact", {"scope": "orders", "key": "k1"})
        await wait_registered(engine, 4)
        for scope, key in [("orders", "k1"), ("orders", "k2"), ("users", "k1"), ("users", "k2")]:
            await w.call("state::set", {"scope": scope, "key": key, "value": 1})
        await wait_until(lambda: len(all_events) == 4, 10, "all events")
        await wait_until(lambda: len(scoped) == 2 and len(keyed) == 2 and len(exact) == 1, 10)
        assert {(e["scope"], e["key"]) for e in scoped} == {("orders", "k1"), ("orders", "k2")}
        assert {(e["scope"], e["key"]) for e in keyed} == {("orders", "k1"), ("users", "k1")}
        assert [(e["scope"], e["key"]) for e in exact] == [("orders", "k1")]


async def test_conditions(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        seen_by_condition: list[Any] = []

        async def only_big(data: Any) -> Any:
            seen_by_condition.append(data)
            return data["new_value"]["n"] > 10

        async def no_result(data: Any) -> Any:
            return None

        async def broken(data: Any) -> Any:
            raise ValueError("condition exploded")

        await w.register_function("only_big", only_big)
        await w.register_function("no_result", no_result)
        await w.register_function("broken", broken)
        big = await recorder(w, "big")
        always = await recorder(w, "always")
        never = await recorder(w, "never")
        await w.register_trigger("state", "big", {"condition_function_id": "only_big"})
        await w.register_trigger("state", "always", {"condition_function_id": "no_result"})
        await w.register_trigger("state", "never", {"condition_function_id": "broken"})
        await wait_registered(engine, 3)
        await w.call("state::set", {"scope": "c", "key": "k", "value": {"n": 1}})
        await w.call("state::set", {"scope": "c", "key": "k", "value": {"n": 50}})
        await wait_until(lambda: len(always) == 2, 10, "unconditional handler")
        await wait_until(lambda: len(seen_by_condition) == 2, 10, "condition calls")
        await wait_until(lambda: module_of(engine).triggers.condition_errors == 2, 10)
        await wait_until(lambda: len(big) == 1, 10, "conditional handler")
        assert big[0]["new_value"] == {"n": 50}
        assert seen_by_condition[0]["event_type"] == "state:created"
        assert never == []


async def test_handler_errors_are_counted_and_do_not_fail_the_write(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:

        async def failing(data: Any) -> Any:
            raise RuntimeError("handler exploded")

        await w.register_function("failing", failing)
        after = await recorder(w, "after")
        await w.register_trigger("state", "failing", {"scope": "e"})
        await w.register_trigger("state", "missing_function", {"scope": "e"})
        await w.register_trigger("state", "after", {"scope": "e"})
        await wait_registered(engine, 3)
        result = await w.call("state::set", {"scope": "e", "key": "k", "value": 1})
        assert result == {"old_value": None, "new_value": 1}
        await wait_until(lambda: len(after) == 1, 10, "the later handler still runs")
        assert module_of(engine).triggers.handler_errors == 2


async def test_a_slow_handler_does_not_block_the_write(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        release = asyncio.Event()
        started: list[Any] = []

        async def slow(data: Any) -> None:
            started.append(data)
            await release.wait()

        await w.register_function("slow", slow)
        await w.register_trigger("state", "slow", {})
        await wait_registered(engine, 1)
        await w.call("state::set", {"scope": "s", "key": "k", "value": 1}, timeout=10)
        await w.call("state::set", {"scope": "s", "key": "k", "value": 2}, timeout=10)
        assert await w.call("state::get", {"scope": "s", "key": "k"}) == 2
        await wait_until(lambda: len(started) == 2, 10, "handlers started")
        release.set()
        await wait_until(lambda: module_of(engine).triggers.pending_events == 0, 10)


async def test_pending_events_are_bounded(state_engine: Any) -> None:
    async with state_engine(max_pending_events=2) as engine, raw_worker(engine) as w:
        release = asyncio.Event()

        async def slow(data: Any) -> None:
            await release.wait()

        await w.register_function("slow", slow)
        await w.register_trigger("state", "slow", {})
        await wait_registered(engine, 1)
        for i in range(5):
            await w.call("state::set", {"scope": "s", "key": "k", "value": i})
        triggers = module_of(engine).triggers
        assert triggers.pending_events == 2 and triggers.events_dropped == 3
        release.set()
        await wait_until(lambda: triggers.pending_events == 0, 10)


async def test_bad_trigger_config_is_rejected(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        await w.register_trigger("state", "f", {"scope": 5})
        msg = await asyncio.wait_for(w.inbox.get(), 10)
        while msg["type"] != "triggerregistrationresult":
            msg = await asyncio.wait_for(w.inbox.get(), 10)
        assert msg["error"]["code"] == "trigger_registration_failed"
        assert "'scope' must be a string" in msg["error"]["message"]


async def test_unregistered_trigger_stops_firing(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        events = await recorder(w, "h")
        trigger_id = await w.register_trigger("state", "h", {})
        await wait_registered(engine, 1)
        await w.call("state::set", {"scope": "s", "key": "k", "value": 1})
        await wait_until(lambda: len(events) == 1, 10)
        await w.send({"type": "unregistertrigger", "id": trigger_id, "trigger_type": "state"})
        await wait_until(lambda: not module_of(engine).triggers.triggers, 10)
        await w.call("state::set", {"scope": "s", "key": "k", "value": 2})
        await w.call("state::get", {"scope": "s", "key": "k"})
        assert module_of(engine).triggers.events_dispatched == 1
