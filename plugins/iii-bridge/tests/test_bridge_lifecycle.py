"""Configuration errors and shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bridging import bridge_config, bridge_of, local_engine, remote_engine

from iii_core.errors import ConfigError
from iii_core.testing import free_port, running_engine, wait_until


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"bogus": 1}, "unknown key(s) bogus"),
        ({"timeout_ms": "soon"}, "key 'timeout_ms' must be a positive integer"),
        ({"timeout_ms": 0}, "key 'timeout_ms' must be a positive integer"),
        ({"url": "http://127.0.0.1:1"}, "key 'url' must start with ws://"),
        ({"service_name": 5}, "key 'service_name' must be a non-empty string"),
        ({"expose": {"local_function": "a"}}, "key 'expose' must be a list"),
        ({"expose": [{"local_function": "a", "remote": "b"}]}, "expose[0]: unknown key(s) remote"),
        ({"forward": [{"local_function": "a"}]}, "forward[0]: key 'remote_function'"),
        (
            {"forward": [{"local_function": "a", "remote_function": "b", "timeout_ms": -1}]},
            "forward[0]: key 'timeout_ms' must be a positive integer",
        ),
        (
            {"forward": [{"local_function": "bridge.invoke", "remote_function": "b"}]},
            "function of the bridge itself",
        ),
    ],
)
async def test_config_errors_name_the_key(config: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        async with running_engine(bridge_config(1, **config)):
            pass
    assert "BridgeClientModule config" in str(error.value)
    assert named in str(error.value)


async def test_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with remote_engine() as remote:
        monkeypatch.setenv("III_BRIDGE_URL", f"ws://127.0.0.1:{remote.port}")
        config = bridge_config(0)
        del config["modules"][0]["config"]["url"]
        async with running_engine(config) as local:
            bridge = bridge_of(local)
            await wait_until(lambda: bridge.connection.connected, 5, "connected through env URL")


def _tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if not t.done() and t is not current}


@pytest.mark.parametrize("remote_up", [True, False])
async def test_shutdown_leaves_no_task_behind(remote_up: bool) -> None:
    async with remote_engine() as remote:
        before = _tasks()
        port = remote.port if remote_up else free_port()
        async with local_engine(port, connected=remote_up) as local:
            bridge = bridge_of(local)
            await asyncio.sleep(0.3)  # let a down remote cost a few reconnect attempts
            assert bridge.connection.connected is remote_up
        assert len(bridge.tasks) == 0
        assert bridge.connection.worker is None
        await wait_until(lambda: len(remote.workers) == 0, 2, "remote saw the bridge leave")
        # The remote engine's own handler of a closed socket lingers about 1 s (aiohttp).
        await wait_until(lambda: _tasks() <= before, 5, "every task of the bridge ended")


async def test_token_for_a_remote_engine_with_worker_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_TEST_TOKEN", "s3cret")
    monkeypatch.setenv("BRIDGE_TEST_WRONG", "nope")
    remote_config = {"modules": [], "auth": {"tokens_env": ["BRIDGE_TEST_TOKEN"]}}
    async with running_engine(remote_config, shutdown_grace_ms=1000) as remote:
        good = bridge_config(remote.port, token_env="BRIDGE_TEST_TOKEN")
        async with running_engine(good) as local:
            bridge = bridge_of(local)
            await wait_until(lambda: bridge.connection.connected, 5, "connected with the token")
            workers = await local.call(
                "bridge.invoke", {"function_id": "engine::workers::list", "data": {}}
            )
            assert any(w.get("name") == "iii-bridge" for w in workers["workers"])
        wrong = bridge_config(remote.port, token_env="BRIDGE_TEST_WRONG")
        async with running_engine(wrong) as local:
            await asyncio.sleep(0.5)  # several refused attempts
            assert not bridge_of(local).connection.connected
    with pytest.raises(ConfigError, match="key 'token_env' names environment variable"):
        async with running_engine(bridge_config(1, token_env="BRIDGE_TEST_UNSET")):
            pass
