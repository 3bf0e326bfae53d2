"""Shared fixtures: a real engine with the state module on each adapter."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from iii_core import Engine

ADAPTERS = ["sqlite", "redis"]


def state_config(adapter: dict[str, Any], **module_config: Any) -> dict[str, Any]:
    return {
        "modules": [
            {
                "class": "modules::state::StateModule",
                "config": {"adapter": adapter, **module_config},
            }
        ]
    }


@pytest.fixture(params=ADAPTERS)
def adapter_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``adapter`` mapping of each adapter: SQLite in memory, and a real Redis."""
    if request.param == "sqlite":
        return {"class": "modules::state::adapters::KvStore", "config": {"path": ":memory:"}}
    redis_url = request.getfixturevalue("redis_url")
    return {"class": "modules::state::adapters::RedisAdapter", "config": {"redis_url": redis_url}}


@pytest.fixture
def state_engine(
    engine_factory: Callable[..., Any], adapter_config: dict[str, Any]
) -> Callable[..., contextlib.AbstractAsyncContextManager[Engine]]:
    """``async with state_engine(**module_config) as engine`` on the parametrised adapter."""

    @contextlib.asynccontextmanager
    async def start(**module_config: Any) -> AsyncIterator[Engine]:
        async with engine_factory(state_config(adapter_config, **module_config)) as engine:
            yield engine

    return start
