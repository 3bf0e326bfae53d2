"""Data channels, trigger types provided by an SDK worker, and W3C trace-context pass-through."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from iii_worker import (
    ChannelReader,
    ChannelWriter,
    InvocationContext,
    TriggerConfig,
    current_invocation,
)

from iii_core.testing import wait_until

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BAGGAGE = "tenant=t1,region=eu"


async def test_channel_round_trip_between_workers(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as consumer:

        async def stats(data: dict[str, Any]) -> dict[str, Any]:
            reader = data["input"]
            assert isinstance(reader, ChannelReader)
            texts: list[str] = []
            reader.on_message(texts.append)
            body = await reader.read_all()
            writer = data["output"]
            assert isinstance(writer, ChannelWriter)
            async with writer:
                await writer.write(body.upper())
                await writer.send_message("done")
            return {"bytes": len(body), "texts": texts}

        consumer.register_function("ch.stats", stats)
        await wait_until(lambda: engine.functions.get("ch.stats") is not None, 5, "registered")
        async with sdk_worker(engine) as producer:
            request = await producer.create_channel(buffer_size=4)
            response = await producer.create_channel()
            payload = b"hello channel " * 10_000  # several 64 KiB frames

            async def produce() -> None:
                async with request.writer:
                    await request.writer.send_message("header")
                    await request.writer.write(payload)

            # the channel ends travel as refs; the callee gets reader/writer objects
            call = producer.call(
                "ch.stats", {"input": request.reader, "output": response.writer_ref}
            )
            result, _ = await asyncio.gather(call, produce())
            assert result == {"bytes": len(payload), "texts": ["header"]}
            items = [item async for item in response.reader]
            assert b"".join(i for i in items if isinstance(i, bytes)) == payload.upper()
            assert items[-1] == "done"


class Hooks:
    def __init__(self) -> None:
        self.started: list[TriggerConfig] = []
        self.stopped: list[str] = []

    async def register_trigger(self, trigger: TriggerConfig) -> None:
        if trigger.config.get("fail"):
            raise ValueError("config rejected: fail=true")
        self.started.append(trigger)

    def unregister_trigger(self, trigger: TriggerConfig) -> None:
        self.stopped.append(trigger.id)


async def test_trigger_type_provider(engine_factory, sdk_worker, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="iii.worker")
    async with engine_factory() as engine, sdk_worker(engine, name="provider") as provider:
        hooks = Hooks()
        provider.register_trigger_type("demo-webhook", "Demo webhook trigger type", hooks)
        await wait_until(lambda: engine.trigger_types.get("demo-webhook") is not None, 5, "type")
        async with sdk_worker(engine, name="user") as user:
            hits: list[Any] = []
            user.register_function("demo.on_webhook", hits.append)
            ok = user.register_trigger("demo-webhook", "demo.on_webhook", {"path": "/hook"})
            user.register_trigger("demo-webhook", "demo.on_webhook", {"fail": True})
            await wait_until(lambda: len(hooks.started) == 1, 5, "trigger forwarded")
            started = hooks.started[0]
            assert (started.id, started.function_id, started.config) == (
                ok.id,
                "demo.on_webhook",
                {"path": "/hook"},
            )
            await wait_until(
                lambda: "config rejected: fail=true" in caplog.text, 5, "rejection reported"
            )
            # the provider fires its trigger by calling the bound function
            await provider.call_void(started.function_id, {"event": "push"})
            await wait_until(lambda: len(hits) == 1, 5, "trigger fired")
            ok.unregister()
            await wait_until(lambda: hooks.stopped == [ok.id], 5, "unregister forwarded")


async def test_traceparent_and_baggage_pass_through(engine_factory, sdk_worker) -> None:
    async with engine_factory() as engine, sdk_worker(engine) as worker:
        seen: dict[str, tuple[str | None, str | None]] = {}

        async def outer(data: Any, ctx: InvocationContext) -> Any:
            seen["outer"] = (ctx.traceparent, ctx.baggage)
            return await worker.call("tr.middle", data)  # forwarded automatically

        def middle(data: Any) -> Any:  # a sync handler: runs in a thread
            ctx = current_invocation()
            assert ctx is not None
            seen["middle"] = (ctx.traceparent, ctx.baggage)
            return worker.call_sync("tr.inner", data)

        async def inner(data: Any) -> str:
            ctx = current_invocation()
            assert ctx is not None
            seen["inner"] = (ctx.traceparent, ctx.baggage)
            return "deep"

        worker.register_function("tr.outer", outer)
        worker.register_function("tr.middle", middle)
        worker.register_function("tr.inner", inner)
        await wait_until(lambda: engine.functions.get("tr.inner") is not None, 5, "registered")
        async with sdk_worker(engine) as caller:
            result = await caller.call("tr.outer", {}, traceparent=TRACEPARENT, baggage=BAGGAGE)
            assert result == "deep"
            assert seen == {k: (TRACEPARENT, BAGGAGE) for k in ("outer", "middle", "inner")}
            seen.clear()
            await caller.call("tr.inner", {})  # outside a handler: nothing invented
            assert seen["inner"] == (None, None)
