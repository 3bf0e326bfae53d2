"""Pub/sub fan-out on the local and Redis adapters."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Recorder

from iii_core.testing import raw_worker, wait_until


@pytest.fixture(params=["local", "redis"])
def pubsub_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        config["adapter"] = {"class": "modules::pubsub::RedisAdapter", "config": {"redis_url": url}}
    return {"modules": [{"class": "modules::pubsub::PubSubModule", "config": config}]}


async def test_every_subscriber_gets_every_message(engine_factory, pubsub_config) -> None:
    async with engine_factory(pubsub_config) as engine, raw_worker(engine) as w:
        a, b = Recorder(), Recorder()
        await w.register_function("sub.a", a)
        await w.register_function("sub.b", b)
        ta = await w.register_trigger("subscribe", "sub.a", {"topic": "news"})
        await w.register_trigger("subscribe", "sub.b", {"topic": "news"})
        module = engine.modules[-1]
        await wait_until(lambda: module.gauges()["pubsub_subscriptions"] == 2, 5)
        for i in range(5):
            msg = await w.call_raw("publish", {"topic": "news", "data": {"i": i}})
            assert "error" not in msg and "result" not in msg
        await wait_until(lambda: len(a.calls) == 5 and len(b.calls) == 5, 10, "fan-out")
        assert sorted(c["i"] for c in a.calls) == list(range(5))
        # Unsubscribing one trigger leaves the other.
        await w.send({"type": "unregistertrigger", "id": ta, "trigger_type": "subscribe"})
        await wait_until(lambda: module.gauges()["pubsub_subscriptions"] == 1, 5)
        await w.call("publish", {"topic": "news", "data": {"i": 99}})
        await wait_until(lambda: len(b.calls) == 6, 10, "remaining subscriber")
        assert len(a.calls) == 5


async def test_publish_errors(engine_factory) -> None:
    config = {"modules": [{"class": "modules::pubsub::PubSubModule"}]}
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        assert (await w.call_raw("publish", {"topic": "", "data": 1}))["error"][
            "code"
        ] == "topic_not_set"
        assert (await w.call_raw("publish", {"data": 1}))["error"][
            "code"
        ] == "deserialization_error"


async def test_redis_fan_out_across_engines(engine_factory, redis_url) -> None:
    adapter = {"class": "modules::pubsub::RedisAdapter", "config": {"redis_url": redis_url}}
    config = {
        "modules": [{"class": "modules::pubsub::PubSubModule", "config": {"adapter": adapter}}]
    }
    async with (
        engine_factory(config) as e1,
        engine_factory(config) as e2,
        raw_worker(e1) as w1,
        raw_worker(e2) as w2,
    ):
        r1, r2 = Recorder(), Recorder()
        await w1.register_function("s", r1)
        await w2.register_function("s", r2)
        await w1.register_trigger("subscribe", "s", {"topic": "x"})
        await w2.register_trigger("subscribe", "s", {"topic": "x"})
        await wait_until(lambda: e2.modules[-1].gauges()["pubsub_subscriptions"] == 1, 5)
        await wait_until(lambda: e1.modules[-1].gauges()["pubsub_subscriptions"] == 1, 5)
        for i in range(3):
            await w1.call("publish", {"topic": "x", "data": i})
        await wait_until(lambda: len(r1.calls) == 3 and len(r2.calls) == 3, 10, "both engines")
