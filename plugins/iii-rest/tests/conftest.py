"""Fixtures of the iii-rest tests: each HTTP test runs on uvicorn and on Hypercorn."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import httpx
import pytest
from iii_rest_testutil import rest_engine

from iii_core import Engine


@pytest.fixture(params=["uvicorn", "hypercorn"])
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rest() -> Callable[
    ..., contextlib.AbstractAsyncContextManager[tuple[Engine, httpx.AsyncClient]]
]:
    return rest_engine
