"""Test helpers: an engine with the HTTP API on a free port, routes, channel ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import websockets

from iii_core import Engine
from iii_core.testing import RawWorker, running_engine

REST = "modules::rest_api::RestApiModule"


def rest_module(engine: Engine) -> Any:
    from iii_rest import RestApiModule

    return next(m for m in engine.modules if isinstance(m, RestApiModule))


@contextlib.asynccontextmanager
async def rest_engine(
    server: str = "uvicorn", extra_modules: list[dict[str, Any]] | None = None, **config: Any
) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    """An engine with the HTTP API on port 0 and an httpx client pointing at it."""
    module = {"class": REST, "config": {"port": 0, "server": server, **config}}
    async with running_engine({"modules": [module, *(extra_modules or [])]}) as engine:
        port = rest_module(engine).port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield engine, client


async def route(
    worker: RawWorker,
    function_id: str,
    handler: Callable[[Any], Any],
    path: str,
    method: str = "GET",
    engine: Engine | None = None,
    **config: Any,
) -> str:
    """Register ``handler`` behind an ``http`` trigger and wait until the route is live."""
    await worker.register_function(function_id, handler)
    trigger_id = await worker.register_trigger(
        "http", function_id, {"api_path": path, "http_method": method, **config}
    )
    if engine is not None:
        from iii_core.testing import wait_until

        await wait_until(
            lambda: (t := engine.triggers.get(trigger_id)) is not None and t.active,
            10,
            f"trigger {trigger_id}",
        )
    return trigger_id


async def open_channel(engine: Engine, ref: dict[str, str]) -> Any:
    """Open one end of a data channel like an SDK does."""
    url = (
        f"ws://127.0.0.1:{engine.port}/ws/channels/{ref['channel_id']}"
        f"?key={ref['access_key']}&dir={ref['direction']}"
    )
    return await websockets.connect(url, max_size=None)


async def write_response(
    engine: Engine, ref: dict[str, str], status: int, headers: dict[str, str], chunks: list[bytes]
) -> None:
    ws = await open_channel(engine, ref)
    await ws.send(json.dumps({"type": "set_status", "status_code": status}))
    await ws.send(json.dumps({"type": "set_headers", "headers": headers}))
    for chunk in chunks:
        await ws.send(chunk)
        await asyncio.sleep(0)
    await ws.close()
