"""Helpers of the bridge tests: two real engines in one process, a *remote* one and a *local*
one whose bridge module is a worker of the remote one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from iii_bridge import BridgeClientModule

from iii_core import Engine
from iii_core.testing import RawWorker, running_engine, wait_until

Handler = Callable[[Any], Awaitable[Any]]

#: Short grace and backoff so that restarts and shutdowns stay well inside a test's budget.
ENGINE = {"shutdown_grace_ms": 1000}
FAST_BACKOFF = {"reconnect_initial_delay_ms": 50, "reconnect_max_delay_ms": 200}


def bridge_config(remote_port: int, **config: Any) -> dict[str, Any]:
    return {
        "modules": [
            {
                "class": "modules::bridge_client::BridgeClientModule",
                "config": {"url": f"ws://127.0.0.1:{remote_port}", **FAST_BACKOFF, **config},
            }
        ]
    }


def bridge_of(engine: Engine) -> BridgeClientModule:
    return next(m for m in engine.modules if isinstance(m, BridgeClientModule))


@contextlib.asynccontextmanager
async def remote_engine(port: int = 0) -> AsyncIterator[Engine]:
    async with running_engine(None, port=port, **ENGINE) as engine:
        yield engine


@contextlib.asynccontextmanager
async def local_engine(
    remote_port: int, *, connected: bool = True, **config: Any
) -> AsyncIterator[Engine]:
    """The local engine with the bridge; waits for the bridge's connection unless told not to."""
    async with running_engine(bridge_config(remote_port, **config), **ENGINE) as engine:
        if connected:
            bridge = bridge_of(engine)
            await wait_until(lambda: bridge.connection.connected, 5, "bridge connected")
        yield engine


async def serve(worker: RawWorker, engine: Engine, function_id: str, handler: Handler) -> None:
    """Register ``function_id`` on ``worker`` and wait until ``engine`` knows it (registration
    and a call from another connection would otherwise race)."""
    await worker.register_function(function_id, handler)
    await wait_until(lambda: engine.functions.get(function_id) is not None, 5, function_id)
