"""``kv_server::*`` functions of ``modules::kv_server::KvServer``."""

from __future__ import annotations

import asyncio
from typing import Any

from iii_core.testing import raw_worker


def kv_config(path: str) -> dict[str, Any]:
    return {"modules": [{"class": "modules::kv_server::KvServer", "config": {"path": path}}]}


async def test_kv_server_functions(engine_factory: Any) -> None:
    async with engine_factory(kv_config(":memory:")) as engine, raw_worker(engine) as w:
        missing = await w.call_raw("kv_server::get", {"index": "i", "key": "k"})
        assert "result" not in missing and "error" not in missing
        assert await w.call("kv_server::set", {"index": "i", "key": "k", "value": {"a": 1}}) == {
            "old_value": None,
            "new_value": {"a": 1},
        }
        assert await w.call("kv_server::set", {"index": "i", "key": "k", "value": {"a": 2}}) == {
            "old_value": {"a": 1},
            "new_value": {"a": 2},
        }
        assert await w.call("kv_server::get", {"index": "i", "key": "k"}) == {"a": 2}
        updated = await w.call(
            "kv_server::update",
            {
                "index": "i",
                "key": "k",
                "ops": [
                    {"type": "increment", "path": "a", "by": 3},
                    {"type": "merge", "path": None, "value": {"b": True}},
                ],
            },
        )
        assert updated == {"old_value": {"a": 2}, "new_value": {"a": 5, "b": True}}
        await w.call("kv_server::set", {"index": "i", "key": "k2", "value": "second"})
        assert await w.call("kv_server::list", {"index": "i"}) == [{"a": 5, "b": True}, "second"]
        assert await w.call("kv_server::list", {"index": "empty"}) == []
        for index in ("stream:a:g1", "stream:a:g2", "stream:b:g1"):
            await w.call("kv_server::set", {"index": index, "key": "x", "value": 1})
        prefixed = await w.call("kv_server::list_keys_with_prefix", {"prefix": "stream:a:"})
        assert sorted(prefixed) == ["stream:a:g1", "stream:a:g2"]
        assert await w.call("kv_server::delete", {"index": "i", "key": "k"}) == {
            "old_value": {"a": 5, "b": True}
        }
        assert await w.call("kv_server::delete", {"index": "i", "key": "k"}) == {"old_value": None}
        bad = await w.call_raw("kv_server::set", {"index": "i", "value": 1})
        assert bad["error"]["code"] == "deserialization_error"
        assert "missing field `key`" in bad["error"]["message"]


async def test_kv_server_updates_are_atomic_and_persistent(
    engine_factory: Any, tmp_path: Any
) -> None:
    config = kv_config(str(tmp_path / "kv.db"))
    update = {"index": "c", "key": "n", "ops": [{"type": "increment", "path": "n", "by": 1}]}
    async with engine_factory(config) as engine, raw_worker(engine) as a, raw_worker(engine) as b:
        await asyncio.gather(*(w.call("kv_server::update", update) for w in (a, b) * 200))
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        assert await w.call("kv_server::get", {"index": "c", "key": "n"}) == {"n": 400}


async def test_default_modules_include_state_and_kv_server() -> None:
    """Both modules are in the default configuration (their defaults need no service)."""
    from iii_core.plugins import Plugins

    plugins = Plugins()
    plugins.load()
    names = {entry.class_name for entry in plugins.default_module_entries()}
    assert {"modules::state::StateModule", "modules::kv_server::KvServer"} <= names
