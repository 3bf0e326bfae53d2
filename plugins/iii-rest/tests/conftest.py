"""Fixtures of the iii-rest tests: each HTTP test runs on uvicorn and on Hypercorn."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Callable

import httpx
import pytest
from iii_rest_testutil import rest_engine

from iii_core import Engine

# These tests exercise iii-rest with iii-core only: other installed plugins (some may be
# half-installed while the monorepo is being built) must not change what the engine loads.
os.environ["III_DISABLE_PLUGINS"] = ",".join(
    ep.name
    for ep in importlib.metadata.entry_points(group="iii")
    if ep.name not in ("core", "rest")
)


@pytest.fixture(params=["uvicorn", "hypercorn"])
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rest() -> Callable[
    ..., contextlib.AbstractAsyncContextManager[tuple[Engine, httpx.AsyncClient]]
]:
    return rest_engine
