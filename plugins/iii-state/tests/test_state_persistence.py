"""The SQLite adapter keeps state across an engine restart; config spellings resolve."""

from __future__ import annotations

from typing import Any

import pytest
from iii_state import StateModule

from iii_core.errors import ConfigError
from iii_core.testing import raw_worker


def sqlite_state(config: dict[str, Any] | None) -> dict[str, Any]:
    module: dict[str, Any] = {"class": "modules::state::StateModule"}
    if config is not None:
        module["config"] = {
            "adapter": {"class": "modules::state::adapters::KvStore", "config": config}
        }
    return {"modules": [module]}


async def test_state_survives_an_engine_restart(engine_factory: Any, tmp_path: Any) -> None:
    config = sqlite_state({"path": str(tmp_path / "nested" / "state.db")})
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        await w.call("state::set", {"scope": "p", "key": "a", "value": {"n": 1}})
        await w.call("state::set", {"scope": "p", "key": "b", "value": [1, 2]})
        await w.call(
            "state::update",
            {"scope": "p", "key": "a", "ops": [{"type": "increment", "path": "n", "by": 4}]},
        )
        await w.call("state::set", {"scope": "gone", "key": "x", "value": 1})
        await w.call("state::delete", {"scope": "gone", "key": "x"})
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        assert await w.call("state::get", {"scope": "p", "key": "a"}) == {"n": 5}
        assert await w.call("state::list", {"scope": "p"}) == [{"n": 5}, [1, 2]]
        assert await w.call("state::list_groups", {}) == {"groups": ["p"]}
        result = await w.call("state::set", {"scope": "p", "key": "b", "value": 3})
        assert result["old_value"] == [1, 2]


async def test_default_adapter_is_a_file_under_data(
    engine_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with engine_factory(sqlite_state(None)) as engine, raw_worker(engine) as w:
        await w.call("state::set", {"scope": "d", "key": "k", "value": 1})
        module = next(m for m in engine.modules if isinstance(m, StateModule))
        assert module.store.path == "./data/state.db"  # type: ignore[attr-defined]
    assert (tmp_path / "data" / "state.db").exists()


async def test_reference_config_keys(engine_factory: Any, tmp_path: Any) -> None:
    directory = tmp_path / "state_store.db"
    directory.mkdir()
    config = sqlite_state(
        {"store_method": "file_based", "file_path": str(directory), "save_interval_ms": 5000}
    )
    for _ in range(2):
        async with engine_factory(config) as engine, raw_worker(engine) as w:
            await w.call(
                "state::update",
                {"scope": "r", "key": "k", "ops": [{"type": "increment", "path": "n", "by": 1}]},
            )
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        assert await w.call("state::get", {"scope": "r", "key": "k"}) == {"n": 2}
    assert (directory / "store.sqlite3").exists()
    memory = sqlite_state({"store_method": "in_memory"})
    async with engine_factory(memory) as engine:
        module = next(m for m in engine.modules if isinstance(m, StateModule))
        assert module.store.path == ":memory:"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("module_config", "message"),
    [
        ({"bogus": 1}, "unknown key(s) bogus"),
        ({"adapter": {"class": "modules::state::adapters::Nope"}}, "unknown state adapter"),
        (
            {"adapter": {"class": "modules::state::adapters::KvStore", "config": {"pth": "x"}}},
            "unknown key(s) pth",
        ),
        (
            {
                "adapter": {
                    "class": "modules::state::adapters::KvStore",
                    "config": {"path": "a", "file_path": "b"},
                }
            },
            "not both",
        ),
        (
            {
                "adapter": {
                    "class": "modules::state::adapters::RedisAdapter",
                    "config": {"max_connections": 0},
                }
            },
            "max_connections",
        ),
        ({"max_pending_events": 0}, "max_pending_events"),
    ],
)
async def test_bad_config_is_a_clear_error(
    engine_factory: Any, module_config: dict[str, Any], message: str
) -> None:
    config = {"modules": [{"class": "modules::state::StateModule", "config": module_config}]}
    with pytest.raises(ConfigError, match=r".*") as info:
        async with engine_factory(config):
            pass
    assert message in str(info.value)
    assert "modules::state::StateModule" in str(info.value)


async def test_both_class_spellings_resolve(engine_factory: Any, redis_url: str) -> None:
    for adapter in (
        {"class": "modules::state::adapters::SqliteAdapter", "config": {"path": ":memory:"}},
        {"class": "adapters::redis::RedisStateAdapter", "config": {"redis_url": redis_url}},
    ):
        config = {
            "modules": [{"class": "modules::state::StateModule", "config": {"adapter": adapter}}]
        }
        async with engine_factory(config) as engine, raw_worker(engine) as w:
            await w.call("state::set", {"scope": "x", "key": "k", "value": 1})
            assert await w.call("state::get", {"scope": "x", "key": "k"}) == 1


async def test_unreachable_redis_fails_start_up(engine_factory: Any) -> None:
    from iii_core.testing import free_port

    adapter = {
        "class": "modules::state::adapters::RedisAdapter",
        "config": {"redis_url": f"redis://127.0.0.1:{free_port()}/0", "connect_timeout_ms": 500},
    }
    config = {"modules": [{"class": "modules::state::StateModule", "config": {"adapter": adapter}}]}
    with pytest.raises(Exception, match="cannot connect to Redis"):
        async with engine_factory(config):
            pass
