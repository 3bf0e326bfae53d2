"""``state::update`` ops on both adapters, including on values that are not objects."""

from __future__ import annotations

from typing import Any

import pytest

from iii_core.testing import raw_worker


def op(kind: str, path: Any = None, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "path": path, **fields}


CASES = [
    # (initial value or MISSING, ops, expected new value)
    ("missing", [op("set", "a", value=1)], {"a": 1}),
    ({"a": 1}, [op("set", "b", value={"x": [1]})], {"a": 1, "b": {"x": [1]}}),
    ({"a": 1}, [op("set", "a", value=None)], {"a": None}),
    ({"a": 1}, [op("set", "", value=[1, 2])], [1, 2]),
    ({"a": 1}, [op("set", "", value=None)], {"a": 1, "": None}),
    ("text", [op("set", "", value={"z": 1})], {"z": 1}),
    ("text", [op("set", "a", value=1)], "text"),
    ({"a": 1, "b": 2}, [op("merge", None, value={"b": 3, "c": 4})], {"a": 1, "b": 3, "c": 4}),
    ({"a": 1}, [op("merge", "", value={"a": {"deep": 1}})], {"a": {"deep": 1}}),
    ({"a": 1}, [op("merge", "a", value={"x": 1})], {"a": 1}),
    ({"a": 1}, [op("merge", None, value=5)], {"a": 1}),
    ([1, 2], [op("merge", None, value={"x": 1})], [1, 2]),
    ("missing", [op("increment", "n", by=5)], {"n": 5}),
    ({"n": 5}, [op("increment", "n", by=2)], {"n": 7}),
    ({"n": 1.5}, [op("increment", "n", by=1)], {"n": 2.5}),
    ({"n": "x"}, [op("increment", "n", by=3)], {"n": 3}),
    (7, [op("increment", "n", by=3)], 7),
    ("missing", [op("decrement", "n", by=5)], {"n": -5}),
    ({"n": 5}, [op("decrement", "n", by=2)], {"n": 3}),
    ({"n": "x"}, [op("decrement", "n", by=3)], {"n": 0}),
    ({"n": None}, [op("decrement", "n", by=3)], {"n": 0}),
    (None, [op("decrement", "n", by=3)], None),
    ({"a": 1, "b": 2}, [op("remove", "a")], {"b": 2}),
    ({"a": 1}, [op("remove", "zzz")], {"a": 1}),
    ([1], [op("remove", "a")], [1]),
    (
        "missing",
        [
            op("set", "a", value=1),
            op("increment", "n", by=2),
            op("increment", "n", by=2),
            op("merge", None, value={"m": True}),
            op("remove", "a"),
            op("decrement", "n", by=1),
        ],
        {"n": 3, "m": True},
    ),
    ({"a": 1}, [], {"a": 1}),
]


@pytest.mark.parametrize(("initial", "ops", "expected"), CASES)
async def test_update_op(state_engine: Any, initial: Any, ops: Any, expected: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        target = {"scope": "ops", "key": "k"}
        if initial != "missing":
            await w.call("state::set", {**target, "value": initial})
        result = await w.call("state::update", {**target, "ops": ops})
        assert result == {
            "old_value": None if initial == "missing" else initial,
            "new_value": expected,
        }
        assert await w.call("state::get", target) == expected


async def test_increment_overflow_is_an_update_error(state_engine: Any) -> None:
    async with state_engine() as engine, raw_worker(engine) as w:
        target = {"scope": "ops", "key": "big"}
        await w.call("state::set", {**target, "value": {"n": 2**63 - 1}})
        msg = await w.call_raw("state::update", {**target, "ops": [op("increment", "n", by=1)]})
        assert msg["error"]["code"] == "UPDATE_ERROR"
        assert await w.call("state::get", target) == {"n": 2**63 - 1}
