"""Entry point (group ``iii``): the stream module and its two adapters, in both spellings."""

from __future__ import annotations

from typing import Any

from iii_core import AdapterSpec, ModuleSpec, hookimpl


def _module(engine: Any, config: dict[str, Any] | None) -> Any:
    from iii_stream.module import StreamModule

    return StreamModule(engine, config)


def _sqlite(config: dict[str, Any], where: str) -> Any:
    from iii_stream.sqlite_adapter import SqliteStreamAdapter

    return SqliteStreamAdapter(config, where)


def _redis(config: dict[str, Any], where: str) -> Any:
    from iii_stream.redis_adapter import RedisStreamAdapter

    return RedisStreamAdapter(config, where)


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::stream::StreamModule",),
            factory=_module,
            default=True,
            description="Real-time streams to browsers and workers (WebSocket on 3112)",
        )
    ]


@hookimpl
def iii_adapter_specs() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            kind="stream",
            class_names=(
                "modules::stream::adapters::SqliteAdapter",
                "modules::stream::adapters::KvStore",
                "adapters::sqlite::SqliteStreamAdapter",
            ),
            factory=_sqlite,
            default=True,
            description="Stream items in an embedded SQLite file (':memory:' allowed)",
        ),
        AdapterSpec(
            kind="stream",
            class_names=(
                "modules::stream::adapters::RedisAdapter",
                "adapters::redis::RedisStreamAdapter",
            ),
            factory=_redis,
            description="Stream items in Redis, events over Redis pub/sub (several engines)",
        ),
    ]
