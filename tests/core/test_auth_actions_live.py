"""Worker auth restrictions also hold for calls that carry an ``action``."""

from __future__ import annotations

import contextlib
from typing import Any

from iii_core.testing import RawWorker


async def test_restricted_worker_cannot_enqueue_a_forbidden_function(engine_factory: Any) -> None:
    # ``action: enqueue`` makes the queue call the function later: it must not be a way
    # around ``allowed_functions``.
    config = "modules: []\nauth: {auth_function_id: 'auth::check'}\n"
    async with engine_factory(config) as engine:

        async def check(data: Any, ctx: Any) -> Any:
            return {"allowed": True, "allowed_functions": ["engine::functions::list"]}

        enqueued: list[str] = []

        async def enqueue(function_id: str, data: Any, action: Any, ctx: Any) -> Any:
            enqueued.append(function_id)
            return {"messageReceiptId": "r1"}

        engine.register_function("auth::check", check)
        engine.register_action("enqueue", enqueue)
        limited = await RawWorker(f"ws://127.0.0.1:{engine.port}/").connect()
        try:
            msg = await limited.call_raw(
                "secret.job", {}, action={"type": "enqueue", "queue": "default"}
            )
            assert msg["error"]["code"] == "forbidden"
            msg = await limited.call_raw("secret.job", {}, action={"type": "void"})
            assert msg["error"]["code"] == "forbidden"
            assert enqueued == []
        finally:
            with contextlib.suppress(Exception):
                await limited.close()
