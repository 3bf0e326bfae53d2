"""Interop with the published Python ``iii-sdk`` 0.25.0, in its own process and venv."""

from __future__ import annotations

import os
from typing import Any

from iii_worker import InvocationError

from iii_core.testing import published_python_sdk, subprocess_worker, wait_until

SCRIPT = os.path.join(os.path.dirname(__file__), "published_worker.py")


async def test_published_python_sdk_and_iii_worker_call_each_other(
    engine_factory, sdk_worker
) -> None:
    python = published_python_sdk("0.25.0")
    async with engine_factory() as engine, sdk_worker(engine, name="iii-worker") as worker:
        reports: list[Any] = []

        async def double(data: dict[str, int]) -> dict[str, int]:
            return {"n": data["n"] * 2}

        def fail(data: Any) -> None:
            raise RuntimeError("nope from iii_worker")

        worker.register_function("sdk.double", double)
        worker.register_function("sdk.fail", fail)
        worker.register_function("sdk.report", reports.append)
        with subprocess_worker([python, SCRIPT, f"ws://127.0.0.1:{engine.port}"]):
            await wait_until(lambda: bool(reports), 60, "report from the published SDK")
            report = reports[0]
            assert report["doubled"] == {"n": 42}
            assert report["error"]["code"] == "invocation_failed"
            assert "nope from iii_worker" in report["error"]["text"]

            await wait_until(lambda: engine.functions.get("pub.greet") is not None, 30, "pub.greet")
            result = await worker.call("pub.greet", {"name": "Ada"})
            assert result["greeting"] == "hello Ada"
            assert "_caller_worker_id" in result["caller_saw"]
            try:
                await worker.call("pub.greet", {})
            except InvocationError as exc:
                assert exc.code == "invocation_failed"
                assert "name" in exc.message
            else:
                raise AssertionError("expected the published handler's KeyError")
