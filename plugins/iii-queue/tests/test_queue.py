"""Queue semantics on both adapters, with real workers over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import MEMORY, Recorder, queue_config

from iii_core.testing import raw_worker, wait_until


async def _enqueue(w: Any, topic: str, data: Any, **extra: Any) -> None:
    msg = await w.call_raw("enqueue", {"topic": topic, "data": data, **extra})
    assert "error" not in msg, msg
    assert "result" not in msg


async def test_handler_gets_data_exactly_and_ack_deletes(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        rec = Recorder()
        await w.register_function("jobs.handle", rec)
        await w.register_trigger("queue", "jobs.handle", {"topic": "orders"})
        payloads = [{"n": 1, "nested": {"a": [1, 2]}}, "text", 3, None, [1, "x"]]
        for p in payloads:
            await _enqueue(w, "orders", p)
        await wait_until(lambda: len(rec.calls) == len(payloads), 10, "handled")
        assert sorted(map(repr, rec.calls)) == sorted(map(repr, payloads))
        queue = engine.modules[-1]
        stats = await w.call("queue::stats", {"topic": "orders"})
        await wait_until(lambda: queue.handled_total == len(payloads), 5, "acked")
        stats = await w.call("queue::stats", {"topic": "orders"})
        assert stats == {"waiting": 0, "active": 0, "dead": 0}


async def test_enqueue_input_errors(engine_factory, tmp_path) -> None:
    async with engine_factory(queue_config(MEMORY)) as engine, raw_worker(engine) as w:
        err = (await w.call_raw("enqueue", {"topic": "", "data": 1}))["error"]
        assert err["code"] == "topic_not_set"
        err = (await w.call_raw("enqueue", {"topic": "t"}))["error"]
        assert err["code"] == "deserialization_error"
        err = (await w.call_raw("queue::dlq::count", {}))["error"]
        assert err["code"] == "topic_not_set"


async def test_order_kept_with_concurrency_one(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        for i in range(30):
            await _enqueue(w, "seq", i)
        rec = Recorder()
        await w.register_function("seq.handle", rec)
        await w.register_trigger(
            "queue", "seq.handle", {"topic": "seq", "queue_config": {"concurrency": 1}}
        )
        await wait_until(lambda: len(rec.calls) == 30, 15, "handled")
        assert rec.calls == list(range(30))
        assert rec.max_running == 1


async def test_retries_backoff_dead_letter_redrive_discard(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        rec = Recorder(fail_times=3)
        await w.register_function("flaky", rec)
        cfg = {"maxRetries": 2, "backoffDelayMs": 150}
        await w.register_trigger("queue", "flaky", {"topic": "t", "queue_config": cfg})
        await _enqueue(w, "t", {"id": 1})
        await wait_until(lambda: len(rec.calls) == 3, 15, "three attempts")
        gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
        assert gaps[0] >= 0.14 and gaps[1] >= 0.29, gaps  # 150 ms, then 300 ms
        await wait_until(lambda: engine.modules[-1].dead_total == 1, 5, "dead letter")
        assert await w.call("queue::dlq::count", {"topic": "t"}) == {"count": 1}
        listing = await w.call("queue::dlq::list", {"topic": "t"})
        assert listing["total"] == 1
        letter = listing["messages"][0]
        assert letter["data"] == {"id": 1} and letter["attempts"] == 3
        assert "failure 3" in letter["error"]
        # Redrive: the 4th attempt succeeds (the recorder only fails three times).
        assert await w.call("queue::dlq::redrive", {"topic": "t"}) == {"redriven": 1}
        await wait_until(lambda: len(rec.calls) == 4, 10, "redriven job handled")
        assert rec.calls[-1] == {"id": 1}
        assert await w.call("queue::dlq::count", {"topic": "t"}) == {"count": 0}
        # Discard: a message that always fails, discarded by id.
        rec.fail_times = 100
        await _enqueue(w, "t", {"id": 2})
        await wait_until(lambda: engine.modules[-1].dead_total == 2, 15, "second dead letter")
        [letter] = (await w.call("queue::dlq::list", {"topic": "t"}))["messages"]
        assert await w.call("queue::dlq::discard", {"topic": "t", "ids": [letter["id"]]}) == {
            "discarded": 1
        }
        assert await w.call("queue::dlq::count", {"topic": "t"}) == {"count": 0}


async def test_fifo_groups_keep_order_and_run_in_parallel(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        seen: dict[str, list[int]] = {"a": [], "b": []}
        running: dict[str, int] = {"a": 0, "b": 0}
        overlap = {"groups": 0, "same_group": 0}
        failed: set[int] = set()

        async def handle(data: Any) -> None:
            g = data["g"]
            running[g] += 1
            if running[g] > 1:
                overlap["same_group"] += 1
            if running["a"] and running["b"]:
                overlap["groups"] += 1
            try:
                await asyncio.sleep(0.02)
                if g == "a" and data["i"] == 2 and 2 not in failed:
                    failed.add(2)  # one failure: the retry must block group a
                    raise RuntimeError("once")
                seen[g].append(data["i"])
            finally:
                running[g] -= 1

        for i in range(8):
            await _enqueue(w, "f", {"g": "a", "i": i}, group_id="a")
            await _enqueue(w, "f", {"g": "b", "i": i}, group_id="b")
        await w.register_function("fifo.handle", handle)
        cfg = {"type": "fifo", "concurrency": 4, "backoffDelayMs": 50}
        await w.register_trigger("queue", "fifo.handle", {"topic": "f", "queue_config": cfg})
        await wait_until(lambda: len(seen["a"]) + len(seen["b"]) == 16, 20, "handled")
        assert seen["a"] == list(range(8)) and seen["b"] == list(range(8))
        assert overlap["same_group"] == 0
        assert overlap["groups"] > 0


async def test_concurrency_limit(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        rec = Recorder(delay=0.1)
        await w.register_function("slow", rec)
        cfg = {"topic": "c", "queue_config": {"concurrency": 3}}
        await w.register_trigger("queue", "slow", cfg)
        for i in range(12):
            await _enqueue(w, "c", i)
        await wait_until(lambda: len(rec.calls) == 12, 15, "handled")
        assert rec.max_running == 3


async def test_competing_triggers_each_message_once(engine_factory, adapter) -> None:
    async with (
        engine_factory(queue_config(adapter)) as engine,
        raw_worker(engine) as w1,
        raw_worker(engine) as w2,
    ):
        r1, r2 = Recorder(delay=0.03), Recorder(delay=0.03)
        await w1.register_function("c.one", r1)
        await w2.register_function("c.two", r2)
        cfg = {"topic": "shared", "queue_config": {"concurrency": 2}}
        await w1.register_trigger("queue", "c.one", cfg)
        await w2.register_trigger("queue", "c.two", cfg)
        await asyncio.sleep(0.1)
        await asyncio.gather(*(_enqueue(w1, "shared", i) for i in range(60)))
        await wait_until(lambda: len(r1.calls) + len(r2.calls) >= 60, 15, "handled")
        await asyncio.sleep(0.3)
        assert sorted(r1.calls + r2.calls) == list(range(60))
        assert r1.calls and r2.calls


async def test_several_workers_share_the_load(engine_factory, tmp_path) -> None:
    async with (
        engine_factory(queue_config(MEMORY)) as engine,
        raw_worker(engine) as w1,
        raw_worker(engine) as w2,
    ):
        r1, r2 = Recorder(delay=0.02), Recorder(delay=0.02)
        await w1.register_function("shared.fn", r1)
        await w2.register_function("shared.fn", r2)
        await wait_until(lambda: len(getattr(engine.functions.get("shared.fn"), "owners", ())) == 2)
        await w1.register_trigger("queue", "shared.fn", {"topic": "load"})
        for i in range(40):
            await _enqueue(w1, "load", i)
        await wait_until(lambda: len(r1.calls) + len(r2.calls) == 40, 15, "handled")
        assert r1.calls and r2.calls


async def test_condition_false_acks_without_running(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        rec = Recorder()

        async def only_even(data: Any) -> bool:
            return data % 2 == 0

        await w.register_function("cond", only_even)
        await w.register_function("h", rec)
        await w.register_trigger("queue", "h", {"topic": "c", "_condition_path": "cond"})
        for i in range(6):
            await _enqueue(w, "c", i)
        queue = engine.modules[-1]
        await wait_until(lambda: queue.handled_total == 6, 10, "all acked")
        assert sorted(rec.calls) == [0, 2, 4]


async def test_long_job_is_not_redelivered_while_running(engine_factory, adapter) -> None:
    async with (
        engine_factory(queue_config(adapter)) as engine,
        raw_worker(engine) as w1,
        raw_worker(engine) as w2,
    ):
        r1, r2 = Recorder(delay=2.5), Recorder(delay=2.5)
        cfg = {"topic": "long", "queue_config": {"visibilityTimeout": 1}}
        await w1.register_function("l1", r1)
        await w2.register_function("l2", r2)
        await w1.register_trigger("queue", "l1", cfg)
        await w2.register_trigger("queue", "l2", cfg)
        await _enqueue(w1, "long", "x")
        queue = engine.modules[-1]
        await wait_until(lambda: queue.handled_total == 1, 15, "handled")
        await asyncio.sleep(0.3)
        assert len(r1.calls) + len(r2.calls) == 1


async def test_named_queue_action_enqueue(engine_factory, adapter) -> None:
    config = queue_config(adapter, queues={"serial": {"concurrency": 1}})
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        rec = Recorder(delay=0.02)
        await w.register_function("demo.add", rec)
        await wait_until(lambda: engine.functions.get("demo.add") is not None, 5)
        receipts = []
        for i in range(5):
            msg = await w.call_raw(
                "demo.add", {"a": i, "b": 5}, action={"type": "enqueue", "queue": "serial"}
            )
            receipts.append(msg["result"]["messageReceiptId"])
        assert len(set(receipts)) == 5
        await wait_until(lambda: len(rec.calls) == 5, 10, "handled")
        assert rec.calls == [{"a": i, "b": 5} for i in range(5)]
        assert rec.max_running == 1
        # A queue the config does not list works with the defaults.
        msg = await w.call_raw("demo.add", {"a": 9}, action={"type": "enqueue", "queue": "other"})
        assert "messageReceiptId" in msg["result"]
        await wait_until(lambda: len(rec.calls) == 6, 10, "handled")
        msg = await w.call_raw("nope", {}, action={"type": "enqueue", "queue": "other"})
        assert msg["error"]["code"] == "function_not_found"
        assert await w.call("queue::dlq::count", {"queue": "serial"}) == {"count": 0}


async def test_unconfigured_action_enqueue_without_module_is_clear(engine_factory) -> None:
    async with engine_factory({"modules": []}) as engine, raw_worker(engine) as w:
        await w.register_function("f", Recorder())
        await wait_until(lambda: engine.functions.get("f") is not None, 5)
        msg = await w.call_raw("f", {}, action={"type": "enqueue", "queue": "default"})
        assert msg["error"]["code"] == "unsupported_action"


async def test_gauges_return_to_zero(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        rec = Recorder()
        await w.register_function("g", rec)
        trigger_id = await w.register_trigger("queue", "g", {"topic": "g"})
        for i in range(20):
            await _enqueue(w, "g", i)
        await wait_until(lambda: len(rec.calls) == 20, 10)
        queue = engine.modules[-1]
        await wait_until(lambda: queue.gauges()["queue_inflight"] == 0, 5)
        await w.send({"type": "unregistertrigger", "id": trigger_id, "trigger_type": "queue"})
        await wait_until(lambda: queue.gauges()["queue_consumers"] == 0, 5)
        await wait_until(lambda: queue.gauges()["queue_tasks"] == 0, 5)


@pytest.mark.parametrize(
    "cls", ["adapters::redis::RedisQueueAdapter", "modules::queue::RedisAdapter"]
)
async def test_redis_class_strings_resolve(engine_factory, redis_url, cls) -> None:
    adapter = {"class": cls, "config": {"redis_url": redis_url}}
    async with engine_factory(queue_config(adapter)) as engine:
        assert type(engine.modules[-1].adapter).__name__ == "RedisQueueAdapter"


async def test_config_errors_are_clear(engine_factory) -> None:
    from iii_core.errors import ConfigError

    with pytest.raises(ConfigError, match="bogus"):
        async with engine_factory(queue_config(MEMORY, bogus=1)):
            pass
    with pytest.raises(ConfigError, match="no::Such"):
        async with engine_factory(queue_config({"class": "no::Such"})):
            pass
    with pytest.raises(ConfigError, match="concurrency"):
        async with engine_factory(queue_config(MEMORY, queues={"q": {"concurrency": 0}})):
            pass


async def test_a_job_that_kills_its_worker_every_time_is_dead_lettered(
    engine_factory, adapter
) -> None:
    """A worker's disconnect during a job counts as a failed attempt: a poison job ends in the
    dead-letter queue after max_retries + 1 deliveries instead of crashing workers forever."""
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as producer:
        queue = engine.modules[-1]
        await _enqueue(producer, "poison", {"id": 1})
        for delivery in range(3):  # maxRetries 2: three deliveries
            async with raw_worker(engine) as victim:
                got = asyncio.Event()

                async def crash(data: Any, victim: Any = victim, got: asyncio.Event = got) -> Any:
                    got.set()
                    await victim.ws.close()  # the worker "crashes" mid-job
                    await asyncio.sleep(10)

                await victim.register_function("poison.job", crash)
                cfg = {"maxRetries": 2, "backoffDelayMs": 50}
                await victim.register_trigger(
                    "queue", "poison.job", {"topic": "poison", "queue_config": cfg}
                )
                await asyncio.wait_for(got.wait(), 15)
            await wait_until(
                lambda: queue.gauges()["queue_consumers"] == 0, 10, f"delivery {delivery} over"
            )
        await wait_until(lambda: queue.dead_total == 1, 10, "dead letter")
        [letter] = (await producer.call("queue::dlq::list", {"topic": "poison"}))["messages"]
        assert letter["data"] == {"id": 1} and letter["attempts"] == 3
        assert "invocation_stopped" in letter["error"]
