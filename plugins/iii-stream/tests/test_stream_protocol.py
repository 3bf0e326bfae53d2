"""The client protocol and the stream functions, with plain WebSocket clients."""

from __future__ import annotations

import json

import pytest
from stream_helpers import stream_client

from iii_core.testing import raw_worker


def key(item: str, group: str = "g", stream: str = "todos") -> dict[str, str]:
    return {"stream_name": stream, "group_id": group, "item_id": item}


async def test_join_sync_updates_leave(stream_engine):
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        await w.call("stream::set", {**key("a"), "data": {"id": "a", "n": 1}})
        async with stream_client(module.port) as c:
            await c.join("s1", "todos", "g")
            sync = await c.recv()
            assert set(sync) == {"type", "timestamp", "streamName", "groupId", "id", "event"}
            assert sync["type"] == "stream" and isinstance(sync["timestamp"], int)
            assert (sync["streamName"], sync["groupId"], sync["id"]) == ("todos", "g", None)
            assert sync["event"] == {"type": "sync", "data": [{"id": "a", "n": 1}]}

            r = await w.call("stream::set", {**key("a"), "data": {"id": "a", "n": 2}})
            assert r == {"old_value": {"id": "a", "n": 1}, "new_value": {"id": "a", "n": 2}}
            ev = await c.recv()
            assert ev["id"] == "a" and ev["event"] == {
                "type": "update",
                "data": {"id": "a", "n": 2},
            }

            await w.call("stream::set", {**key("b"), "data": 5})
            assert (await c.recv())["event"] == {"type": "create", "data": 5}
            # another group is not delivered
            await w.call("stream::set", {**key("x", group="other"), "data": 1})

            assert await w.call("stream::delete", key("b")) == {"old_value": 5}
            ev = await c.recv()
            assert ev["id"] == "b" and ev["event"] == {"type": "delete", "data": 5}
            # deleting nothing emits nothing and returns a null old_value
            assert await w.call("stream::delete", key("zzz")) == {"old_value": None}

            await c.leave("s1", "todos", "g")
            await w.call("stream::set", {**key("c"), "data": 1})
            await c.nothing_within(0.3)
            assert module.server.index.count == 0


async def test_item_subscription_and_one_copy_per_subscription(stream_engine):
    async with (
        stream_engine() as (engine, module),
        raw_worker(engine) as w,
        stream_client(module.port) as c,
    ):
        await c.join("item", "todos", "g", item="a")
        sync = await c.recv()
        assert sync["id"] == "a" and sync["event"] == {"type": "sync", "data": None}
        await c.join("group", "todos", "g")
        assert (await c.recv())["event"]["type"] == "sync"

        await w.call("stream::set", {**key("b"), "data": "only-group"})
        ev = await c.recv()
        assert ev["id"] == "b"
        await c.nothing_within(0.2)  # the item subscription does not match "b"

        await w.call("stream::set", {**key("a"), "data": "both"})
        first, second = await c.recv(), await c.recv()
        assert first == second and first["event"] == {"type": "create", "data": "both"}
        await c.nothing_within(0.2)

        # sync of an existing item through get
        await c.join("item2", "todos", "g", item="a")
        assert (await c.recv())["event"] == {"type": "sync", "data": "both"}


async def test_send_and_list_functions(stream_engine):
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        async with stream_client(module.port) as c:
            await c.join("s", "chat", "room")
            await c.recv()
            raw = await w.call_raw(
                "stream::send",
                {"stream_name": "chat", "group_id": "room", "type": "typing", "data": {"u": 1}},
            )
            assert "result" in raw and raw["result"] is None  # an explicit null
            ev = await c.recv()
            assert ev["id"] is None
            assert ev["event"] == {"type": "event", "event": {"type": "typing", "data": {"u": 1}}}

        for stream, group, item in [("b", "g2", "1"), ("b", "g1", "1"), ("a", "g", "1")]:
            await w.call("stream::set", {**key(item, group, stream), "data": item})
        assert await w.call("stream::list_groups", {"stream_name": "b"}) == ["g1", "g2"]
        assert await w.call("stream::list", {"stream_name": "b", "group_id": "g1"}) == ["1"]
        assert await w.call("stream::list_all", {}) == {
            "stream": [{"id": "a", "groups": ["g"]}, {"id": "b", "groups": ["g1", "g2"]}],
            "count": 2,
        }
        missing = await w.call_raw("stream::get", key("nope"))
        assert "result" not in missing and "error" not in missing
        assert await w.call("stream::get", key("1", "g", "a")) == "1"


async def test_update_ops(stream_engine):
    async with (
        stream_engine() as (engine, module),
        raw_worker(engine) as w,
        stream_client(module.port) as c,
    ):
        await c.join("s", "todos", "g", item="u")
        await c.recv()
        ops = [
            {"type": "set", "path": "name", "value": "x"},
            {"type": "increment", "path": "n", "by": 2},
            {"type": "decrement", "path": "m", "by": 3},
            {"type": "merge", "path": None, "value": {"k": 1}},
        ]
        r = await w.call("stream::update", {**key("u"), "ops": ops})
        assert r == {"old_value": None, "new_value": {"name": "x", "n": 2, "m": -3, "k": 1}}
        assert (await c.recv())["event"]["type"] == "create"
        r = await w.call(
            "stream::update",
            {
                **key("u"),
                "ops": [
                    {"type": "remove", "path": "k"},
                    {"type": "increment", "path": "n", "by": 1},
                ],
            },
        )
        assert r["new_value"] == {"name": "x", "n": 3, "m": -3}
        ev = await c.recv()
        assert ev["event"] == {"type": "update", "data": {"name": "x", "n": 3, "m": -3}}
        root = [{"type": "set", "path": "", "value": [1, 2]}]
        assert (await w.call("stream::update", {**key("u"), "ops": root}))["new_value"] == [
            1,
            2,
        ]
        with pytest.raises(RuntimeError) as err:
            await w.call(
                "stream::update",
                {**key("u"), "ops": [{"type": "increment", "path": "n", "by": 1.5}]},
            )
        assert err.value.args[0] == "deserialization_error"


async def test_bad_input_and_bad_frames(stream_engine):
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        with pytest.raises(RuntimeError) as err:
            await w.call("stream::set", {"stream_name": "s", "group_id": "g"})
        assert err.value.args[0] == "deserialization_error"
        assert "item_id" in err.value.args[1]
        with pytest.raises(RuntimeError) as err:
            await w.call("stream::list_all", None)
        assert err.value.args[0] == "deserialization_error"
        async with stream_client(module.port) as c:
            await c.ws.send("not json")
            await c.ws.send(json.dumps({"type": "dance", "data": {}}))
            await c.ws.send(json.dumps({"type": "join", "data": {"streamName": 1}}))
            await c.ws.send(
                b'{"type":"join","data":{"subscriptionId":"b","streamName":"s","groupId":"g"}}'
            )
            assert (await c.recv())["event"] == {"type": "sync", "data": []}  # binary JSON works
            pong = await c.ws.ping()
            await pong
            assert module.server.invalid_frames_total == 3


async def test_custom_backend(stream_engine):
    store: dict[str, object] = {}

    async def set_(data):
        old = store.get(data["item_id"])
        store[data["item_id"]] = data["data"]
        return {"old_value": old, "new_value": data["data"]}

    async def get(data):
        return store.get(data["item_id"])

    async def list_(data):
        return list(store.values())

    async def delete(data):
        return {"old_value": store.pop(data["item_id"], None)}

    async def list_groups(data):
        return ["only"]

    async with (
        stream_engine() as (engine, module),
        raw_worker(engine) as backend,
        raw_worker(engine) as w,
    ):
        for op, fn in [
            ("set", set_),
            ("get", get),
            ("list", list_),
            ("delete", delete),
            ("list_groups", list_groups),
        ]:
            await backend.register_function(f"stream::{op}(mem)", fn)
        from iii_core.testing import wait_until

        await wait_until(lambda: engine.functions.get("stream::list_groups(mem)") is not None)
        store["pre"] = {"v": 0}
        async with stream_client(module.port) as c:
            await c.join("s", "mem", "g")
            assert (await c.recv())["event"] == {"type": "sync", "data": [{"v": 0}]}
            r = await w.call(
                "stream::set", {"stream_name": "mem", "group_id": "g", "item_id": "a", "data": 1}
            )
            assert r == {"old_value": None, "new_value": 1}
            assert (await c.recv())["event"] == {"type": "create", "data": 1}
            assert store["a"] == 1
            assert (
                await w.call("stream::get", {"stream_name": "mem", "group_id": "g", "item_id": "a"})
                == 1
            )
            assert await w.call("stream::list_groups", {"stream_name": "mem"}) == ["only"]
            r = await w.call(
                "stream::delete", {"stream_name": "mem", "group_id": "g", "item_id": "a"}
            )
            assert r == {"old_value": 1}
            assert (await c.recv())["event"] == {"type": "delete", "data": 1}
        # the adapter was not used
        assert await module.adapter.list("mem", "g") == []


async def test_custom_backend_returning_nothing_is_an_error(stream_engine):
    async def set_(data):
        return None

    async with stream_engine() as (engine, _module), raw_worker(engine) as w:
        await w.register_function("stream::set(bad)", set_)
        from iii_core.testing import wait_until

        await wait_until(lambda: engine.functions.get("stream::set(bad)") is not None)
        with pytest.raises(RuntimeError) as err:
            await w.call(
                "stream::set", {"stream_name": "bad", "group_id": "g", "item_id": "a", "data": 1}
            )
        assert err.value.args[0] == "STREAM_SET_ERROR"
