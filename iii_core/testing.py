"""Test helpers shared by every distribution's tests (a pytest plugin, entry point ``pytest11``).

Fixtures:

* ``engine_factory``: ``async with engine_factory(config) as engine`` starts a real engine on an
  ephemeral port (``engine.port``); ``config`` is YAML text, a mapping, or an ``EngineConfig``.
* ``redis_url``: a real ``redis-server`` started on a free port for the test session (fails with
  an install hint when the binary is missing).

Helpers: :class:`RawWorker`, a minimal protocol client over real sockets (``websockets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import attrs
import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the env
from aiohttp import web

from iii_core.config import EngineConfig, parse_config
from iii_core.engine import Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(
    config: str | dict[str, Any] | EngineConfig | None = None, **overrides: Any
) -> EngineConfig:
    if isinstance(config, EngineConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_config(yaml.safe_dump(config), "<test config>")
    elif isinstance(config, str):
        cfg = parse_config(config, "<test config>")
    else:
        cfg = EngineConfig(modules=[])
    overrides.setdefault("port", 0)
    return attrs.evolve(cfg, **overrides)


@contextlib.asynccontextmanager
async def running_engine(
    config: str | dict[str, Any] | EngineConfig | None = None, **overrides: Any
) -> AsyncIterator[Engine]:
    """Start an engine on real sockets (port 0 unless given) and stop it afterwards."""
    engine = Engine(make_config(config, **overrides))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
def engine_factory() -> Callable[..., contextlib.AbstractAsyncContextManager[Engine]]:
    return running_engine


class RawWorker:
    """A bare protocol client: send and receive JSON frames, serve functions, make calls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None
        self.worker_id: str | None = None
        self.handlers: dict[str, Callable[[Any], Awaitable[Any]]] = {}
        self._results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()

    async def connect(self, **kwargs: Any) -> RawWorker:
        import websockets

        self.ws = await websockets.connect(self.url, max_size=None, **kwargs)
        first = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
        assert first["type"] == "workerregistered", first
        self.worker_id = first["worker_id"]
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        import websockets

        try:
            async for frame in self.ws:
                msg = json.loads(frame)
                kind = msg.get("type")
                if kind == "invocationresult" and msg["invocation_id"] in self._results:
                    self._results.pop(msg["invocation_id"]).set_result(msg)
                elif kind == "invokefunction" and msg["function_id"] in self.handlers:
                    task = asyncio.create_task(self._serve(msg))
                    self._serving.add(task)
                    task.add_done_callback(self._serving.discard)
                else:
                    await self.inbox.put(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self._results.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    async def _serve(self, msg: dict[str, Any]) -> None:
        reply: dict[str, Any] = {
            "type": "invocationresult",
            "invocation_id": msg["invocation_id"],
            "function_id": msg["function_id"],
        }
        try:
            reply["result"] = await self.handlers[msg["function_id"]](msg.get("data"))
        except Exception as exc:
            reply["error"] = {"code": "invocation_failed", "message": str(exc)}
        with contextlib.suppress(Exception):
            await self.send(reply)

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    async def register_function(
        self, function_id: str, handler: Callable[[Any], Awaitable[Any]], **fields: Any
    ) -> None:
        self.handlers[function_id] = handler
        await self.send({"type": "registerfunction", "id": function_id, **fields})

    async def register_trigger(
        self, trigger_type: str, function_id: str, config: Any, trigger_id: str | None = None
    ) -> str:
        trigger_id = trigger_id or str(uuid.uuid4())
        await self.send(
            {
                "type": "registertrigger",
                "id": trigger_id,
                "trigger_type": trigger_type,
                "function_id": function_id,
                "config": config,
            }
        )
        return trigger_id

    async def call_raw(
        self, function_id: str, data: Any = None, timeout: float = 10, **extra: Any
    ) -> dict[str, Any]:
        """Call and return the whole ``invocationresult`` message."""
        invocation_id = str(uuid.uuid4())
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[invocation_id] = fut
        await self.send(
            {
                "type": "invokefunction",
                "invocation_id": invocation_id,
                "function_id": function_id,
                "data": data,
                **extra,
            }
        )
        return await asyncio.wait_for(fut, timeout)

    async def call(
        self, function_id: str, data: Any = None, timeout: float = 10, **extra: Any
    ) -> Any:
        """Call and return the result; raise ``RuntimeError(code, message)`` on an error."""
        msg = await self.call_raw(function_id, data, timeout, **extra)
        if "error" in msg:
            raise RuntimeError(msg["error"]["code"], msg["error"].get("message"))
        return msg.get("result")

    async def call_void(self, function_id: str, data: Any = None) -> None:
        await self.send({"type": "invokefunction", "function_id": function_id, "data": data})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 2)


@contextlib.asynccontextmanager
async def raw_worker(engine_or_url: Engine | str, path: str = "/") -> AsyncIterator[RawWorker]:
    url = (
        engine_or_url
        if isinstance(engine_or_url, str)
        else f"ws://127.0.0.1:{engine_or_url.port}{path}"
    )
    worker = await RawWorker(url).connect()
    try:
        yield worker
    finally:
        await worker.close()


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true (for state that changes asynchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


_redis_ports = itertools.count()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start a throwaway ``redis-server`` and yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; install it with 'apt-get install -y redis-server' "
            "(CI's .ci/run does this)"
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="iii-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc, 5)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis server for this test (started and stopped by the fixture)."""
    with redis_server() as url:
        yield url


@pytest.fixture
def iii_env() -> dict[str, str]:
    """Environment for subprocesses: the current one, with OTel of the published SDKs off."""
    env = dict(os.environ)
    env.setdefault("OTEL_ENABLED", "false")
    env.setdefault("III_TELEMETRY_ENABLED", "false")
    return env


# ---------------------------------------------------------------------- published SDKs

SDK_CACHE = os.environ.get(
    "III_SDK_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "iii-test-sdks")
)
PY_SDK_NEWEST = "0.25.0"
PY_SDK_OLD = "0.10.0"
NODE_SDK_NEWEST = "0.22.1"
NODE_SDK_OLD = "0.9.0"


def published_python_sdk(version: str = PY_SDK_NEWEST) -> str:
    """Path of a Python interpreter whose venv has the published ``iii-sdk==version`` (import
    name ``iii``), created once and cached in ``$III_SDK_CACHE``.  Fails with an install hint."""
    root = os.path.join(SDK_CACHE, f"py-iii-sdk-{version}")
    python = os.path.join(root, "bin", "python")
    marker = os.path.join(root, ".ready")
    if not os.path.exists(marker):
        import sys
        import venv

        with _lock(root + ".lock"):
            if not os.path.exists(marker):
                shutil.rmtree(root, ignore_errors=True)
                venv.EnvBuilder(with_pip=True).create(root)
                extra = "[otel]" if version.startswith("0.10") else ""
                proc = subprocess.run(
                    [python, "-m", "pip", "install", "-q", f"iii-sdk{extra}=={version}"],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    pytest.fail(
                        f"could not install the published iii-sdk {version} from PyPI "
                        f"(pip install iii-sdk=={version}): {proc.stderr[-2000:]}"
                    )
                open(marker, "w").close()
        del sys
    return python


def published_node_sdk(version: str = NODE_SDK_NEWEST) -> str:
    """Directory whose ``node_modules`` holds the published npm ``iii-sdk@version`` (and ``ws``);
    run Node scripts with this as the working directory (or ``NODE_PATH``)."""
    root = os.path.join(SDK_CACHE, f"node-iii-sdk-{version}")
    marker = os.path.join(root, ".ready")
    if not os.path.exists(marker):
        if shutil.which("npm") is None:
            pytest.fail(
                "npm is not installed; install Node.js 20 with npm (apt-get install -y nodejs npm)"
            )
        with _lock(root + ".lock"):
            if not os.path.exists(marker):
                shutil.rmtree(root, ignore_errors=True)
                os.makedirs(root)
                with open(os.path.join(root, "package.json"), "w") as f:
                    json.dump({"name": "iii-test-client", "private": True}, f)
                proc = subprocess.run(
                    [
                        "npm",
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--silent",
                        f"iii-sdk@{version}",
                        "ws@8",
                    ],
                    cwd=root,
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    pytest.fail(
                        f"could not install the published npm iii-sdk@{version} "
                        f"(npm install iii-sdk@{version}): {proc.stderr[-2000:]}"
                    )
                open(marker, "w").close()
    return root


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    import fcntl

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def subprocess_worker(
    args: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run a worker process (SDK client) for the duration of the block; killed afterwards.
    Its output goes to the test's stderr so that failures show it."""
    full_env = dict(os.environ)
    full_env.setdefault("OTEL_ENABLED", "false")
    full_env.setdefault("III_TELEMETRY_ENABLED", "false")
    full_env.update(env or {})
    proc = subprocess.Popen(args, env=full_env, cwd=cwd, text=True)
    try:
        yield proc
    finally:
        stop_process(proc, 5)


def stop_process(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM, then SIGKILL if ``proc`` is still running after ``grace`` seconds; reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def local_http_server(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port for the block; yields ``http://127.0.0.1:<port>``
    (webhook targets, OTLP receivers, HTTP-invoked functions in tests)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    try:
        await site.start()
        server = cast("asyncio.Server", site._server)
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


async def connect_when_ready(url: str, timeout: float = 20.0, **kwargs: Any) -> RawWorker:
    """Connect a :class:`RawWorker` to an engine that is still starting (e.g. a subprocess)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await RawWorker(url).connect(**kwargs)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def protocol_vectors() -> str:
    """The published SDKs' recorded frames (``tests/vectors`` of the checkout, a copy of the
    project's shared test vectors), or ``$III_VECTORS``."""
    path = os.environ.get("III_VECTORS") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "vectors"
    )
    if not os.path.isdir(path):
        pytest.fail(f"protocol test vectors not found at {path} (set III_VECTORS)")
    return path
