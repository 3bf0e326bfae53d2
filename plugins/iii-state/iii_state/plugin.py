"""Entry point of the ``iii-state`` distribution: the state module, the KV server and the state
adapters."""

from __future__ import annotations

from typing import Any

from iii_core import AdapterSpec, ModuleSpec, hookimpl
from iii_state.kv_server import KvServer
from iii_state.module import StateModule
from iii_state.redis_adapter import RedisStateAdapter, redis_config
from iii_state.sqlite_store import SqliteStore, sqlite_config

STATE_DEFAULT_PATH = "./data/state.db"


def _sqlite_adapter(config: dict[str, Any], where: str) -> SqliteStore:
    return SqliteStore(sqlite_config(config, where), STATE_DEFAULT_PATH)


def _redis_adapter(config: dict[str, Any], where: str) -> RedisStateAdapter:
    return RedisStateAdapter(redis_config(config, where))


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::state::StateModule",),
            factory=StateModule,
            default=True,
            description="state::* functions and the state trigger type",
        ),
        ModuleSpec(
            class_names=("modules::kv_server::KvServer",),
            factory=KvServer,
            default=True,
            description="kv_server::* functions on an embedded SQLite store",
        ),
    ]


@hookimpl
def iii_adapter_specs() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            kind="state",
            class_names=(
                "modules::state::adapters::KvStore",
                "modules::state::adapters::SqliteAdapter",
                "adapters::sqlite::SqliteStateAdapter",
            ),
            factory=_sqlite_adapter,
            default=True,
            description="embedded SQLite state store (./data/state.db)",
        ),
        AdapterSpec(
            kind="state",
            class_names=(
                "modules::state::adapters::RedisAdapter",
                "adapters::redis::RedisStateAdapter",
            ),
            factory=_redis_adapter,
            description="Redis state store, one hash per scope (state:<scope>)",
        ),
    ]
