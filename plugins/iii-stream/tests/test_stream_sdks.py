"""The published SDKs' stream calls against this module (real subprocess workers)."""

from __future__ import annotations

import textwrap

from stream_helpers import stream_client

from iii_core.testing import published_node_sdk, published_python_sdk, subprocess_worker, wait_until

PY_WORKER = textwrap.dedent(
    """
    import sys, time, warnings
    warnings.simplefilter("ignore")
    from iii import InitOptions, register_worker
    from iii.helpers import create_stream
    from iii.stream import IStream

    store = {}

    class Memory(IStream):
        async def get(self, input):
            return store.get(input.item_id)
        async def set(self, input):
            from iii_helpers.stream import StreamSetResult
            old = store.get(input.item_id)
            store[input.item_id] = input.data
            return StreamSetResult(old_value=old, new_value=input.data)
        async def delete(self, input):
            from iii_helpers.stream import StreamDeleteResult
            return StreamDeleteResult(old_value=store.pop(input.item_id, None))
        async def list(self, input):
            return list(store.values())
        async def list_groups(self, input):
            return ["g"]
        async def update(self, input):
            return None

    iii = register_worker(sys.argv[1], InitOptions(worker_name="py-stream"))
    create_stream(iii, "sdkmem", Memory())
    time.sleep(0.5)
    r = iii.trigger({"function_id": "stream::set", "payload":
        {"stream_name": "sdkmem", "group_id": "g", "item_id": "a", "data": {"from": "py"}}})
    assert r == {"old_value": None, "new_value": {"from": "py"}}, r
    r = iii.trigger({"function_id": "stream::set", "payload":
        {"stream_name": "plain", "group_id": "g", "item_id": "b", "data": 7}})
    got = iii.trigger({"function_id": "stream::get", "payload":
        {"stream_name": "plain", "group_id": "g", "item_id": "b"}})
    assert got == 7, got
    print("PY-DONE", flush=True)
    time.sleep(60)
    """
)

NODE_WORKER = textwrap.dedent(
    """
    const { registerWorker } = require('iii-sdk')
    const iii = registerWorker(process.argv[2])
    ;(async () => {
      const r = await iii.trigger({ function_id: 'stream::set', payload:
        { stream_name: 'node', group_id: 'g', item_id: 'n1', data: { from: 'node' } } })
      if (r.new_value.from !== 'node') throw new Error(JSON.stringify(r))
      await iii.trigger({ function_id: 'stream::send', payload:
        { stream_name: 'node', group_id: 'g', type: 'hello', data: 1 } })
      const groups = await iii.trigger({ function_id: 'stream::list_groups',
        payload: { stream_name: 'node' } })
      if (JSON.stringify(groups) !== '["g"]') throw new Error(JSON.stringify(groups))
      console.log('NODE-DONE')
      process.exit(0)
    })().catch((e) => { console.error(e); process.exit(1) })
    """
)


async def test_published_python_sdk_stream_calls(stream_engine, tmp_path):
    python = published_python_sdk("0.25.0")
    script = tmp_path / "worker.py"
    script.write_text(PY_WORKER)
    async with stream_engine() as (engine, module), stream_client(module.port) as c:
        await c.join("s", "sdkmem", "g")
        await c.join("t", "plain", "g")
        await c.recv()
        await c.recv()
        with subprocess_worker([python, str(script), f"ws://127.0.0.1:{engine.port}"]) as proc:
            ev = await c.recv_until(lambda m: m["streamName"] == "sdkmem", timeout=60)
            assert ev["event"] == {"type": "create", "data": {"from": "py"}}
            ev = await c.recv_until(lambda m: m["streamName"] == "plain", timeout=30)
            assert ev["event"] == {"type": "create", "data": 7}
            # the SDK's create_stream back-end is used, not the adapter
            assert await module.adapter.get("sdkmem", "g", "a") is None
            assert proc.poll() is None


async def test_published_node_sdk_stream_calls(stream_engine, tmp_path):
    root = published_node_sdk("0.22.1")
    script = tmp_path / "worker.cjs"
    script.write_text(NODE_WORKER)
    async with stream_engine() as (engine, module), stream_client(module.port) as c:
        await c.join("s", "node", "g")
        await c.recv()
        with subprocess_worker(
            ["node", str(script), f"ws://127.0.0.1:{engine.port}"],
            env={"NODE_PATH": f"{root}/node_modules"},
        ) as proc:
            ev = await c.recv(timeout=60)
            assert ev["id"] == "n1" and ev["event"] == {
                "type": "create",
                "data": {"from": "node"},
            }
            ev = await c.recv(timeout=30)
            assert ev["event"] == {"type": "event", "event": {"type": "hello", "data": 1}}
            await wait_until(lambda: proc.poll() is not None, timeout=30, what="node worker exit")
            assert proc.returncode == 0
