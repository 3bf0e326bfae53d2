"""Adapters: SQLite persistence, Redis shared by two engines, class strings and config errors."""

from __future__ import annotations

import pytest
from stream_helpers import STREAM, stream_client, stream_config, stream_module

from iii_core import ConfigError
from iii_core.testing import raw_worker


async def test_sqlite_file_survives_a_restart(engine_factory, tmp_path):
    path = str(tmp_path / "db" / "stream.sqlite3")
    adapter = {"class": "modules::stream::adapters::SqliteAdapter", "config": {"path": path}}
    async with engine_factory(stream_config(adapter=adapter)) as engine, raw_worker(engine) as w:
        await w.call(
            "stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": [1]}
        )
        await w.call(
            "stream::set", {"stream_name": "s", "group_id": "g", "item_id": "b", "data": 2}
        )
        await w.call(
            "stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": 3}
        )
    # the reference KvStore spelling and keys select the same store
    kv = {
        "class": "modules::stream::adapters::KvStore",
        "config": {"store_method": "file_based", "file_path": path},
    }
    async with engine_factory(stream_config(adapter=kv)) as engine, raw_worker(engine) as w:
        # an update keeps the item's place in the list
        assert await w.call("stream::list", {"stream_name": "s", "group_id": "g"}) == [3, 2]


async def test_two_engines_share_one_redis(engine_factory, redis_url):
    for spelling in (
        "modules::stream::adapters::RedisAdapter",
        "adapters::redis::RedisStreamAdapter",
    ):
        adapter = {"class": spelling, "config": {"redis_url": redis_url}}
        async with (
            engine_factory(stream_config(adapter=adapter)) as a,
            engine_factory(stream_config(adapter=adapter)) as b,
            raw_worker(b) as wb,
        ):
            ma, mb = stream_module(a), stream_module(b)
            async with stream_client(ma.port) as ca, stream_client(mb.port) as cb:
                await ca.join("s", "live", "g")
                await cb.join("s", "live", "g")
                assert (await ca.recv())["event"]["type"] == "sync"
                assert (await cb.recv())["event"]["type"] == "sync"
                r = await wb.call(
                    "stream::set",
                    {"stream_name": "live", "group_id": "g", "item_id": spelling, "data": 1},
                )
                assert r["old_value"] is None
                for c in (ca, cb):  # one copy each, whichever engine took the write
                    ev = await c.recv()
                    assert ev["id"] == spelling and ev["event"] == {"type": "create", "data": 1}
                await ca.nothing_within(0.2)
                await wb.call(
                    "stream::update",
                    {
                        "stream_name": "live",
                        "group_id": "g",
                        "item_id": spelling,
                        "ops": [{"type": "increment", "path": "n", "by": 1}],
                    },
                )
                assert (await ca.recv())["event"]["type"] == "update"
                await cb.recv()
            async with raw_worker(a) as wa:
                got = await wa.call(
                    "stream::get", {"stream_name": "live", "group_id": "g", "item_id": spelling}
                )
                assert got == 1 or got == {"n": 1}
                all_ = await wa.call("stream::list_all", {})
                assert {"id": "live", "groups": ["g"]} in all_["stream"]
                await wa.call(
                    "stream::delete", {"stream_name": "live", "group_id": "g", "item_id": spelling}
                )


async def test_redis_unreachable_fails_start_up(engine_factory):
    from iii_core.testing import free_port

    adapter = {
        "class": "modules::stream::adapters::RedisAdapter",
        "config": {"redis_url": f"redis://127.0.0.1:{free_port()}"},
    }
    with pytest.raises(ConfigError, match="cannot connect to Redis"):
        async with engine_factory(stream_config(adapter=adapter)):
            pass


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"port": 0, "bogus": 1}, "bogus"),
        ({"port": 0, "adapter": {"class": "nope::Adapter"}}, "nope::Adapter"),
        (
            {
                "port": 0,
                "adapter": {
                    "class": "modules::stream::adapters::SqliteAdapter",
                    "config": {"pathh": "x"},
                },
            },
            "pathh",
        ),
        ({"port": 0, "send_buffer_bytes": 0}, "send_buffer_bytes"),
    ],
)
async def test_config_errors_name_the_key(engine_factory, config, message):
    with pytest.raises(ConfigError, match=message):
        async with engine_factory({"modules": [{"class": STREAM, "config": config}]}):
            pass
