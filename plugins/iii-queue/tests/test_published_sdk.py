"""The published Python SDK 0.25: ``TriggerAction.Enqueue`` and a queue trigger it registers."""

from __future__ import annotations

import textwrap
from typing import Any

from conftest import MEMORY, Recorder, queue_config

from iii_core.testing import published_python_sdk, raw_worker, subprocess_worker, wait_until

SDK_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from iii import TriggerAction, register_worker

    iii = register_worker(sys.argv[1])

    def consume(data):
        iii.trigger({"function_id": "test.seen", "payload": {"consumed": data}})
        return None

    iii.register_function("sdk.consume", consume)
    iii.register_trigger({"type": "queue", "function_id": "sdk.consume",
                          "config": {"topic": "sdk-topic"}})
    time.sleep(1.0)
    receipt = iii.trigger({"function_id": "test.target", "payload": {"a": 4, "b": 5},
                           "action": TriggerAction.Enqueue(queue="default")})
    iii.trigger({"function_id": "test.seen", "payload": {"receipt": receipt}})
    iii.trigger({"function_id": "enqueue", "payload": {"topic": "sdk-topic", "data": {"k": 1}}})
    time.sleep(60)
    """
)


async def test_published_sdk_enqueue_action_and_queue_trigger(engine_factory) -> None:
    python = published_python_sdk("0.25.0")
    async with engine_factory(queue_config(MEMORY)) as engine, raw_worker(engine) as w:
        target, seen = Recorder(), Recorder()
        await w.register_function("test.target", target)
        await w.register_function("test.seen", seen)
        url = f"ws://127.0.0.1:{engine.port}"
        with subprocess_worker([python, "-c", SDK_SCRIPT, url]):
            await wait_until(lambda: len(target.calls) == 1, 60, "enqueued call ran")
            await wait_until(lambda: len(seen.calls) == 2, 30, "receipt and consumed message")
        assert target.calls == [{"a": 4, "b": 5}]
        for call in seen.calls:
            call.pop("_caller_worker_id", None)  # the engine adds it to worker-to-worker calls
        by_kind: dict[str, Any] = {next(iter(c)): c for c in seen.calls}
        assert set(by_kind["receipt"]["receipt"]) == {"messageReceiptId"}
        assert by_kind["consumed"] == {"consumed": {"k": 1}}
