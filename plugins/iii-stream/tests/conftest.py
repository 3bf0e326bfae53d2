"""Fixtures of the stream tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from stream_helpers import stream_config, stream_module

from iii_core import Engine


@pytest.fixture
def stream_engine(engine_factory: Any) -> Callable[..., Any]:
    """``async with stream_engine(**config) as (engine, module)``."""

    @contextlib.asynccontextmanager
    async def start(**config: Any) -> AsyncIterator[tuple[Engine, Any]]:
        async with engine_factory(stream_config(**config)) as engine:
            yield engine, stream_module(engine)

    return start
