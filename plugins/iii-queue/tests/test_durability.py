"""Crashes: a worker SIGKILLed mid-job, the engine stopped or killed, Redis killed, two engines
sharing one Redis.  Every acknowledged message must be handled; none may be lost."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import Recorder, queue_config

from iii_core.testing import free_port, raw_worker, subprocess_worker, wait_until

STUCK_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, websockets

    async def main():
        ws = await websockets.connect(sys.argv[1])
        await ws.recv()
        await ws.send(json.dumps({"type": "registerfunction", "id": "stuck.job"}))
        await ws.send(json.dumps({"type": "registertrigger", "id": "t1", "trigger_type": "queue",
                                  "function_id": "stuck.job", "config": {"topic": "k"}}))
        async for frame in ws:
            msg = json.loads(frame)
            if msg.get("type") == "invokefunction":
                print("started", json.dumps(msg["data"]), flush=True)  # and never answer

    asyncio.run(main())
    """
)


async def test_worker_killed_mid_job_is_redelivered(engine_factory, adapter) -> None:
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        queue = engine.modules[-1]
        url = f"ws://127.0.0.1:{engine.port}/"
        with subprocess.Popen(
            [sys.executable, "-c", STUCK_WORKER, url], stdout=subprocess.PIPE, text=True
        ) as proc:
            try:
                await wait_until(lambda: queue.gauges()["queue_consumers"] == 1, 15, "trigger")
                for i in range(5):
                    await w.call("enqueue", {"topic": "k", "data": i})
                await wait_until(lambda: queue.gauges()["queue_inflight"] == 5, 10, "in flight")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()
        rec = Recorder()
        await w.register_function("stuck.job", rec)
        await w.register_trigger("queue", "stuck.job", {"topic": "k"})
        await wait_until(lambda: len(rec.calls) == 5, 15, "redelivered")
        await wait_until(lambda: queue.handled_total == 5, 5, "acked")
        assert sorted(rec.calls) == list(range(5))


async def test_engine_restart_keeps_waiting_and_inflight_jobs(engine_factory, tmp_path) -> None:
    adapter = {
        "class": "modules::queue::BuiltinQueueAdapter",
        "config": {"path": str(tmp_path / "q.db")},
    }
    config = queue_config(adapter)
    async with engine_factory(config, shutdown_grace_ms=100) as engine, raw_worker(engine) as w:
        blocked = asyncio.Event()
        started: list[Any] = []

        async def stuck(data: Any) -> None:
            started.append(data)
            await blocked.wait()

        await w.register_function("r.job", stuck)
        await w.register_trigger(
            "queue", "r.job", {"topic": "r", "queue_config": {"concurrency": 3}}
        )
        for i in range(10):
            await w.call("enqueue", {"topic": "r", "data": i})
        await wait_until(lambda: len(started) == 3, 10, "three in flight")
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        rec = Recorder()
        await w.register_function("r.job", rec)
        await w.register_trigger("queue", "r.job", {"topic": "r"})
        await wait_until(lambda: len(set(rec.calls)) == 10, 15, "all delivered after restart")
        assert sorted(set(rec.calls)) == list(range(10))


async def test_engine_killed_jobs_survive(engine_factory, tmp_path) -> None:
    """A real engine process SIGKILLed with jobs in flight and waiting."""
    db = str(tmp_path / "q.db")
    adapter = {"class": "modules::queue::BuiltinQueueAdapter", "config": {"path": db}}
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(queue_config(adapter)))
    port = free_port()
    iii = shutil.which("iii") or pytest.fail("the 'iii' console script of iii-core is missing")
    with subprocess_worker([iii, "--config", str(cfg_file), "--port", str(port)]) as proc:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "engine did not start"
                await asyncio.sleep(0.1)
        async with raw_worker(f"ws://127.0.0.1:{port}/") as w:
            started: list[Any] = []

            async def stuck(data: Any) -> None:
                started.append(data)
                await asyncio.Event().wait()

            await w.register_function("kill.job", stuck)
            await w.register_trigger(
                "queue", "kill.job", {"topic": "kill", "queue_config": {"concurrency": 2}}
            )
            for i in range(8):
                await w.call("enqueue", {"topic": "kill", "data": i})
            await wait_until(lambda: len(started) == 2, 15, "two in flight")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    async with engine_factory(queue_config(adapter)) as engine, raw_worker(engine) as w:
        rec = Recorder()
        await w.register_function("kill.job", rec)
        await w.register_trigger("queue", "kill.job", {"topic": "kill"})
        await wait_until(lambda: len(set(rec.calls)) == 8, 15, "all delivered after the crash")


class OwnRedis:
    """A redis-server with an append-only file on a fixed port, so it can be killed and
    restarted with its data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="iii-queue-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or pytest.fail(
            "redis-server is not installed (apt-get install -y redis-server)"
        )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)
        shutil.rmtree(server.dir, ignore_errors=True)


async def test_redis_killed_and_restarted_under_load(engine_factory, own_redis) -> None:
    adapter = {"class": "modules::queue::RedisAdapter", "config": {"redis_url": own_redis.url}}
    config = queue_config(adapter, defaults={"visibility_timeout_ms": 1500})
    async with engine_factory(config) as engine, raw_worker(engine) as w:
        rec = Recorder(delay=0.005)
        await w.register_function("load.job", rec)
        await w.register_trigger("queue", "load.job", {"topic": "load"})
        accepted: list[int] = []
        refused = 0
        for i in range(300):
            if i == 100:
                own_redis.kill()
            if i == 130:
                await asyncio.to_thread(own_redis.start)
            while True:
                msg = await w.call_raw("enqueue", {"topic": "load", "data": i}, timeout=20)
                if "error" not in msg:
                    accepted.append(i)
                    break
                assert msg["error"]["code"] == "enqueue_failed"
                refused += 1
                if 100 <= i < 130:
                    break  # Redis is down: the producer knows this one was not stored
                await asyncio.sleep(0.05)
        assert refused > 0 and len(accepted) >= 270
        await wait_until(lambda: set(accepted) <= set(rec.calls), 30, "every accepted message")


async def test_two_engines_share_one_redis_queue(engine_factory, redis_url) -> None:
    adapter = {"class": "adapters::redis::RedisQueueAdapter", "config": {"redis_url": redis_url}}
    async with (
        engine_factory(queue_config(adapter)) as e1,
        engine_factory(queue_config(adapter)) as e2,
        raw_worker(e1) as w1,
        raw_worker(e2) as w2,
    ):
        r1, r2 = Recorder(delay=0.01), Recorder(delay=0.01)
        await w1.register_function("two.job", r1)
        await w2.register_function("two.job", r2)
        cfg = {"topic": "two", "queue_config": {"concurrency": 2}}
        await w1.register_trigger("queue", "two.job", cfg)
        await w2.register_trigger("queue", "two.job", cfg)
        await asyncio.gather(*(w1.call("enqueue", {"topic": "two", "data": i}) for i in range(100)))
        await wait_until(lambda: len(r1.calls) + len(r2.calls) >= 100, 20, "handled")
        await asyncio.sleep(0.3)
        assert sorted(r1.calls + r2.calls) == list(range(100))
        assert r1.calls and r2.calls
