"""Every ``state::*`` function over a real worker socket, on both adapters."""

from __future__ import annotations

from typing import Any

import pytest
from iii_state import StateModule

from iii_core.testing import RawWorker, raw_worker


async def call_error(worker: RawWorker, function_id: str, data: Any) -> dict[str, Any]:
    msg = await worker.call_raw(function_id, data)
    assert "error" in msg, msg
    return msg["error"]


async def test_set_get_overwrite(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        first = await w.call("state::set", {"scope": "users", "key": "u1", "value": {"n": 1}})
        assert first == {"old_value": None, "new_value": {"n": 1}}
        assert await w.call("state::get", {"scope": "users", "key": "u1"}) == {"n": 1}
        second = await w.call("state::set", {"scope": "users", "key": "u1", "value": [1, "a"]})
        assert second == {"old_value": {"n": 1}, "new_value": [1, "a"]}
        assert await w.call("state::get", {"scope": "users", "key": "u1"}) == [1, "a"]
        # Scalars round-trip unchanged.
        for value in ("text", 42, 1.5, True, {"nested": {"a": [None, {}]}}, []):
            await w.call("state::set", {"scope": "s", "key": "k", "value": value})
            assert await w.call("state::get", {"scope": "s", "key": "k"}) == value


async def test_data_is_an_alias_of_value(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        result = await w.call("state::set", {"scope": "a", "key": "k", "data": {"x": 1}})
        assert result == {"old_value": None, "new_value": {"x": 1}}
        assert await w.call("state::get", {"scope": "a", "key": "k"}) == {"x": 1}


async def test_get_missing_has_no_result(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        msg = await w.call_raw("state::get", {"scope": "nope", "key": "k"})
        assert "result" not in msg and "error" not in msg, msg


async def test_delete_returns_the_old_value(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        await w.call("state::set", {"scope": "d", "key": "k", "value": {"v": 1}})
        assert await w.call("state::delete", {"scope": "d", "key": "k"}) == {"v": 1}
        missing = await w.call_raw("state::get", {"scope": "d", "key": "k"})
        assert "result" not in missing
        again = await w.call_raw("state::delete", {"scope": "d", "key": "k"})
        assert "result" not in again and "error" not in again, again


async def test_list_and_list_groups(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        assert await w.call("state::list", {"scope": "empty"}) == []
        for i in range(5):
            await w.call("state::set", {"scope": "items", "key": f"k{i}", "value": {"i": i}})
        await w.call("state::set", {"scope": "items", "key": "k2", "value": {"i": 22}})
        values = await w.call("state::list", {"scope": "items"})
        assert sorted(v["i"] for v in values) == [0, 1, 3, 4, 22]
        await w.call("state::set", {"scope": "b-scope", "key": "x", "value": 1})
        await w.call("state::set", {"scope": "a-scope", "key": "x", "value": 1})
        await w.call("state::set", {"scope": "a-scope", "key": "y", "value": 1})
        groups = await w.call("state::list_groups", {})
        assert groups == {"groups": ["a-scope", "b-scope", "items"]}
        # A scope whose last key is deleted disappears from the groups.
        await w.call("state::delete", {"scope": "b-scope", "key": "x"})
        assert await w.call("state::list_groups", {}) == {"groups": ["a-scope", "items"]}


async def test_list_keeps_insertion_order_on_sqlite(engine_factory: Any) -> None:
    config = {
        "modules": [
            {
                "class": "modules::state::StateModule",
                "config": {
                    "adapter": {
                        "class": "modules::state::adapters::KvStore",
                        "config": {"path": ":memory:"},
                    }
                },
            }
        ]
    }
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        for key in ("c", "a", "b"):
            await w.call("state::set", {"scope": "o", "key": key, "value": key})
        await w.call("state::set", {"scope": "o", "key": "c", "value": "c2"})
        assert await w.call("state::list", {"scope": "o"}) == ["c2", "a", "b"]


@pytest.mark.parametrize(
    ("function_id", "data", "detail"),
    [
        ("state::set", {"scope": "s", "key": "k"}, "missing field `value`"),
        ("state::set", {"key": "k", "value": 1}, "missing field `scope`"),
        ("state::get", {"scope": 1, "key": "k"}, "`scope` must be a string"),
        ("state::get", None, "expected an object"),
        ("state::delete", {"scope": "s"}, "missing field `key`"),
        ("state::list", {}, "missing field `scope`"),
        ("state::list_groups", None, "expected an object"),
        ("state::update", {"scope": "s", "key": "k"}, "missing field `ops`"),
        ("state::update", {"scope": "s", "key": "k", "ops": {}}, "array of update ops"),
        (
            "state::update",
            {"scope": "s", "key": "k", "ops": [{"type": "increment", "path": "n", "by": 1.5}]},
            "`by` must be an integer",
        ),
        (
            "state::update",
            {"scope": "s", "key": "k", "ops": [{"type": "append", "path": "n"}]},
            "unknown variant",
        ),
    ],
)
async def test_bad_input_is_a_deserialization_error(
    state_engine: Any, function_id: str, data: Any, detail: str
) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        error = await call_error(w, function_id, data)
        assert error["code"] == "deserialization_error"
        assert error["message"].startswith(f"Failed to deserialize input for {function_id}: ")
        assert detail in error["message"]
        # Nothing was written by a rejected update.
        assert await w.call("state::list_groups", {}) == {"groups": []}


async def test_store_failures_map_to_reference_error_codes(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        await w.call("state::set", {"scope": "s", "key": "k", "value": 1})
        # Close the adapter under the module: every function now fails with its own code.
        module = next(m for m in engine.modules if isinstance(m, StateModule))
        await module.store.close()
        cases = [
            ("state::set", {"scope": "s", "key": "k", "value": 1}, "SET_ERROR"),
            ("state::get", {"scope": "s", "key": "k"}, "GET_ERROR"),
            ("state::delete", {"scope": "s", "key": "k"}, "DELETE_ERROR"),
            ("state::update", {"scope": "s", "key": "k", "ops": []}, "UPDATE_ERROR"),
            ("state::list", {"scope": "s"}, "LIST_ERROR"),
            ("state::list_groups", {}, "LIST_GROUPS_ERROR"),
        ]
        for function_id, data, code in cases:
            error = await call_error(w, function_id, data)
            assert error["code"] == code, (function_id, error)
        # The engine is still serving calls.
        assert await w.call("engine::functions::list", {}) is not None


async def test_value_too_large_is_a_set_error(engine_factory: Any, adapter_config: Any) -> None:
    adapter = {
        "class": adapter_config["class"],
        "config": {**adapter_config["config"], "max_value_bytes": 100},
    }
    config = {"modules": [{"class": "modules::state::StateModule", "config": {"adapter": adapter}}]}
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        error = await call_error(w, "state::set", {"scope": "s", "key": "k", "value": "x" * 200})
        assert error["code"] == "SET_ERROR" and "max_value_bytes" in error["message"]
        missing = await w.call_raw("state::get", {"scope": "s", "key": "k"})
        assert "result" not in missing
