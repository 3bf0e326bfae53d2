"""Trigger types stream / stream:join / stream:leave, and the upgrade's auth function."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from stream_helpers import StreamClient, stream_client

from iii_core.testing import raw_worker, wait_until


async def test_stream_triggers_match_and_honour_conditions(stream_engine):
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        seen: list[dict] = []
        group_only: list[dict] = []

        async def on_event(data):
            seen.append(data)

        async def on_group(data):
            group_only.append(data)

        async def condition(data):
            return data["id"] != "skip"

        async def broken_condition(data):
            raise ValueError("boom")

        await w.register_function("t.all", on_event)
        await w.register_function("t.group", on_group)
        await w.register_function("t.cond", condition)
        await w.register_function("t.broken", broken_condition)
        await w.register_trigger(
            "stream", "t.all", {"stream_name": "s", "condition_function_id": "t.cond"}
        )
        await w.register_trigger(
            "stream", "t.group", {"stream_name": "s", "group_id": "g2", "item_id": "i"}
        )
        await w.register_trigger(
            "stream", "t.group", {"stream_name": "s", "condition_function_id": "t.broken"}
        )
        await wait_until(lambda: len(module.triggers.stream) == 3)

        await w.call(
            "stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": 1}
        )
        await w.call(
            "stream::set", {"stream_name": "s", "group_id": "g", "item_id": "skip", "data": 1}
        )
        await w.call(
            "stream::send",
            {"stream_name": "s", "group_id": "g2", "id": "i", "type": "ping", "data": 2},
        )
        await w.call(
            "stream::set", {"stream_name": "other", "group_id": "g", "item_id": "a", "data": 1}
        )
        await wait_until(lambda: len(seen) == 2 and len(group_only) == 1, what="triggers")
        assert seen[0]["event"] == {"type": "create", "data": 1}
        assert seen[0]["streamName"] == "s" and seen[0]["groupId"] == "g" and seen[0]["id"] == "a"
        assert seen[1]["event"] == {"type": "event", "event": {"type": "ping", "data": 2}}
        assert group_only[0]["id"] == "i"
        assert module.triggers.errors_total >= 1  # the broken condition was recorded, not run


async def test_bad_stream_trigger_config_is_rejected(stream_engine):
    async with stream_engine() as (engine, _module), raw_worker(engine) as w:
        tid = await w.register_trigger("stream", "f", {"group_id": "g"})
        msg = await asyncio.wait_for(w.inbox.get(), 5)
        assert msg["type"] == "triggerregistrationresult" and msg["id"] == tid
        assert "stream_name" in msg["error"]["message"]


async def test_join_refusal_and_leave_triggers(stream_engine):
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        joins: list[dict] = []
        leaves: list[dict] = []

        async def gate(data):
            joins.append(data)
            return {"unauthorized": data["group_id"] == "secret"}

        async def not_bool(data):
            return {"unauthorized": "yes"}  # not a boolean: authorised

        async def failing(data):
            raise RuntimeError("join trigger error counts as authorised")

        async def on_leave(data):
            leaves.append(data)

        for fid, fn in [
            ("j.gate", gate),
            ("j.odd", not_bool),
            ("j.fail", failing),
            ("l.leave", on_leave),
        ]:
            await w.register_function(fid, fn)
        await w.register_trigger("stream:join", "j.gate", {})
        await w.register_trigger("stream:join", "j.odd", {})
        await w.register_trigger("stream:join", "j.fail", {})
        await w.register_trigger("stream:leave", "l.leave", None)
        await wait_until(lambda: len(module.triggers.join) == 3 and len(module.triggers.leave) == 1)

        async with stream_client(module.port) as c:
            await c.join("s1", "docs", "secret", item="x")
            refused = await c.recv()
            assert refused["event"] == {"type": "unauthorized"}
            assert (refused["streamName"], refused["groupId"], refused["id"]) == (
                "docs",
                "secret",
                "x",
            )
            assert module.server.index.count == 0
            await w.call(
                "stream::set",
                {"stream_name": "docs", "group_id": "secret", "item_id": "x", "data": 1},
            )
            await c.nothing_within(0.3)

            await c.join("s2", "docs", "public")
            assert (await c.recv())["event"]["type"] == "sync"
            assert joins[-1] == {
                "subscription_id": "s2",
                "stream_name": "docs",
                "group_id": "public",
                "id": None,
                "context": None,
            }
            await c.leave("s2", "docs", "public")
            await wait_until(lambda: len(leaves) == 1)
            assert leaves[0]["subscription_id"] == "s2"
            await c.join("s3", "docs", "public")
            await c.recv()
        # a disconnect leaves every remaining subscription
        await wait_until(lambda: len(leaves) == 2, what="leave on disconnect")
        assert leaves[1]["subscription_id"] == "s3"
        assert module.server.index.count == 0 and not module.server.connections


async def test_sync_failure_sends_no_sync(stream_engine):
    async def broken_list(data):
        raise RuntimeError("backend down")

    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        await w.register_function("stream::list(broken)", broken_list)
        await wait_until(lambda: engine.functions.get("stream::list(broken)") is not None)
        async with stream_client(module.port) as c:
            await c.join("s", "broken", "g")
            await c.nothing_within(0.3)
            assert module.server.index.count == 1  # the subscription is kept
            await w.call("stream::send", {"stream_name": "broken", "group_id": "g", "type": "t"})
            assert (await c.recv())["event"]["type"] == "event"


async def test_auth_function(stream_engine):
    async def auth(data):
        token = data["query_params"].get("token", [None])[0]
        if token == "boom":
            raise RuntimeError("auth backend failed")
        if token == "no":
            return False
        if token == "deny":
            return {"authorized": False}
        return {
            "context": {"user": token, "ua": data["headers"].get("x-who"), "path": data["path"]}
        }

    async with (
        stream_engine(auth_function="auth.check") as (engine, module),
        raw_worker(engine) as w,
    ):
        contexts: list = []

        async def on_join(data):
            contexts.append(data["context"])
            return None

        await w.register_function("auth.check", auth)
        await w.register_function("j.ctx", on_join)
        await w.register_trigger("stream:join", "j.ctx", {})
        await wait_until(lambda: len(module.triggers.join) == 1)
        for token in ("no", "deny", "boom"):
            with pytest.raises(websockets.InvalidStatus) as err:
                await websockets.connect(f"ws://127.0.0.1:{module.port}/?token={token}")
            assert err.value.response.status_code == 401
        async with websockets.connect(
            f"ws://127.0.0.1:{module.port}/?token=ada%20l", additional_headers={"X-Who": "me"}
        ) as ws:
            c = StreamClient(ws)
            await c.join("s", "x", "y")
            await c.recv()
        assert contexts == [{"user": "ada%20l", "ua": "me", "path": "/"}]
