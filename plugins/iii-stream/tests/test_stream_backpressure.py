"""Backpressure: a client that stops reading is cut off; the others are not disturbed."""

from __future__ import annotations

import asyncio
import contextlib
import json

import websockets
from stream_helpers import stream_client

from iii_core.testing import raw_worker, wait_until


async def test_slow_client_is_disconnected_others_undisturbed(stream_engine):
    # The slow client's library stops reading from its socket once 2 frames are queued.
    async with (
        stream_engine(send_buffer_bytes=256 * 1024) as (engine, module),
        raw_worker(engine) as w,
        stream_client(module.port, max_queue=2, max_size=None, close_timeout=0.5) as slow,
        stream_client(module.port, max_size=None) as fast,
    ):
        await slow.join("s", "big", "g")
        await fast.join("s", "big", "g")
        await slow.recv()
        await fast.recv()
        blob = "x" * 64 * 1024
        received = 0
        for i in range(200):
            await w.call(
                "stream::set",
                {"stream_name": "big", "group_id": "g", "item_id": str(i), "data": blob},
            )
            ev = await fast.recv()
            assert ev["id"] == str(i)
            received += 1
            if module.server.index.slow_clients_disconnected:
                break
        await wait_until(lambda: module.server.index.slow_clients_disconnected == 1, what="cut-off")
        await wait_until(lambda: module.server.index.count == 1, what="slow client's cleanup")
        # the fast client still gets everything
        await w.call(
            "stream::set",
            {"stream_name": "big", "group_id": "g", "item_id": "after", "data": 1},
        )
        assert (await fast.recv())["id"] == "after"
        assert received < 200
        assert len(module.server.connections) == 1


async def test_thousands_of_subscribers_on_one_group(stream_engine):
    n = 2000
    async with stream_engine() as (engine, module), raw_worker(engine) as w:
        sockets = []
        try:
            for start in range(0, n, 200):
                batch = await asyncio.gather(
                    *(websockets.connect(f"ws://127.0.0.1:{module.port}/") for _ in range(200))
                )
                sockets.extend(batch)
                for i, ws in enumerate(batch):
                    await ws.send(
                        json.dumps(
                            {
                                "type": "join",
                                "data": {
                                    "subscriptionId": f"s{start + i}",
                                    "streamName": "crowd",
                                    "groupId": "all",
                                },
                            }
                        )
                    )
            await wait_until(lambda: module.server.index.count == n, timeout=60, what="joins")
            await asyncio.gather(*(ws.recv() for ws in sockets))  # syncs
            for k in range(3):
                await w.call(
                    "stream::set",
                    {"stream_name": "crowd", "group_id": "all", "item_id": str(k), "data": k},
                )
            for ws in sockets:
                got = [json.loads(await asyncio.wait_for(ws.recv(), 30))["id"] for _ in range(3)]
                assert got == ["0", "1", "2"]
            assert module.server.index.slow_clients_disconnected == 0
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await wait_until(lambda: module.server.index.count == 0, timeout=30, what="cleanup")


async def test_burst_reaches_every_client_in_one_order(stream_engine):
    # Concurrent sets are fanned out in batches (one write per client per loop iteration):
    # every subscriber must still get every event, in the same order as every other one,
    # and a second subscription of the same connection gets its own copies in that order.
    n_clients, n_sets = 50, 40
    async with (
        stream_engine() as (engine, module),
        raw_worker(engine) as w,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [
            await stack.enter_async_context(stream_client(module.port)) for _ in range(n_clients)
        ]
        for i, c in enumerate(clients):
            await c.join(f"s{i}", "burst", "g")
            assert (await c.recv())["event"]["type"] == "sync"
        await clients[0].join("item", "burst", "g", "7")
        assert (await clients[0].recv())["event"]["type"] == "sync"
        await asyncio.gather(
            *(
                w.call(
                    "stream::set",
                    {"stream_name": "burst", "group_id": "g", "item_id": str(k), "data": k},
                )
                for k in range(n_sets)
            )
        )
        orders = [[(await c.recv(30))["id"] for _ in range(n_sets)] for c in clients[1:]]
        assert sorted(orders[0]) == sorted(str(k) for k in range(n_sets))
        assert all(order == orders[0] for order in orders)
        first = [(await clients[0].recv(30))["id"] for _ in range(n_sets + 1)]
        assert [i for i in first if i != "7"] == [i for i in orders[0] if i != "7"]
        assert first.count("7") == 2
        assert module.server.index.delivered_total >= n_clients * n_sets + 1
