"""``modules::bridge_client::BridgeClientModule``: this engine as a worker of another engine.

| function | input | result |
|---|---|---|
| ``bridge.invoke`` | ``{function_id, data?, timeout_ms?}`` | the remote function's result |
| ``bridge.invoke_async`` | ``{function_id, data?}`` | null (fire-and-forget on the remote engine) |
| each ``forward[].local_function`` | anything | ``remote_function``'s result for the same input |

Each ``expose`` entry is served on the remote engine as ``remote_function`` by calling
``local_function`` here.  A remote failure (the remote function's error, no connection, no answer
in time) raises code ``bridge_error`` with the remote code and message inside the text; malformed
input raises ``deserialization_error`` as every built-in function does.
"""

from __future__ import annotations

from typing import Any, Final

import iii_worker

from iii_bridge.config import BridgeConfig, ExposeEntry, ForwardEntry, bridge_config
from iii_bridge.connection import ExposedHandler, RemoteConnection
from iii_core import CallContext, Engine, InvocationError, Module, OwnedTasks
from iii_core.errors import DeserializationError
from iii_core.registries import ModuleHandler

INVOKE: Final = "bridge.invoke"
INVOKE_ASYNC: Final = "bridge.invoke_async"
_MISSING: Any = object()


class BridgeError(InvocationError):
    """A call through the bridge failed on the remote side or could not reach it."""

    code = "bridge_error"


class BridgeClientModule(Module):
    """Calls functions of a remote engine and serves local functions to it."""

    name = "BridgeClientModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config: BridgeConfig = bridge_config(config)
        self.url = self.config.remote_url
        self.connection = RemoteConnection(
            self.url,
            self.config.service_name,
            {entry.remote_id: self._exposed(entry) for entry in self.config.expose},
            iii_worker.ReconnectConfig(
                initial_delay=self.config.reconnect_initial_delay_ms / 1000,
                max_delay=self.config.reconnect_max_delay_ms / 1000,
            ),
            self.config.auth_headers(),
        )
        self.tasks = OwnedTasks("bridge client")
        self.calls = 0
        self.errors = 0

    async def initialize(self) -> None:
        register = self.engine.register_function
        register(INVOKE, self.invoke, description="Call a function on the remote engine")
        register(
            INVOKE_ASYNC,
            self.invoke_async,
            description="Call a function on the remote engine without waiting (fire-and-forget)",
        )
        for entry in self.config.forward:
            register(
                entry.local_function,
                self._forwarder(entry),
                description=f"Forwarded to {entry.remote_function} on the remote engine",
            )
        # Never blocks start-up: the remote engine may come up later (or go away and come back).
        self.tasks.spawn(self.connection.run(), name=f"bridge connection to {self.url}")

    async def shutdown(self) -> None:
        await self.tasks.cancel_all(timeout=4.0)

    def gauges(self) -> dict[str, int]:
        return {
            "bridge_connected": int(self.connection.connected),
            "bridge_calls_total": self.calls,
            "bridge_errors_total": self.errors,
        }

    # ------------------------------------------------------------------ local functions

    async def invoke(self, data: Any, ctx: CallContext) -> Any:
        data = _input_object(data, INVOKE)
        function_id = _function_id(data, INVOKE)
        timeout_ms = _timeout_ms(data, INVOKE, self.config.timeout_ms)
        return await self._call_remote(function_id, data.get("data"), timeout_ms, ctx)

    async def invoke_async(self, data: Any, ctx: CallContext) -> None:
        data = _input_object(data, INVOKE_ASYNC)
        function_id = _function_id(data, INVOKE_ASYNC)
        self.calls += 1
        worker = self._live_worker(function_id)
        try:
            await worker.call_void(
                function_id, data.get("data"), traceparent=ctx.traceparent, baggage=ctx.baggage
            )
        except iii_worker.InvocationError as exc:
            raise self._failed(f"could not send {function_id} to the remote engine", exc) from exc

    def _forwarder(self, entry: ForwardEntry) -> ModuleHandler:
        timeout_ms = entry.timeout_ms or self.config.timeout_ms

        async def forward(data: Any, ctx: CallContext) -> Any:
            return await self._call_remote(entry.remote_function, data, timeout_ms, ctx)

        return forward

    async def _call_remote(
        self, function_id: str, data: Any, timeout_ms: int, ctx: CallContext
    ) -> Any:
        self.calls += 1
        worker = self._live_worker(function_id)
        try:
            return await worker.call(
                function_id,
                data,
                timeout=timeout_ms / 1000,
                traceparent=ctx.traceparent,
                baggage=ctx.baggage,
            )
        except iii_worker.InvocationTimeoutError as exc:
            self.errors += 1
            raise BridgeError(
                f"remote function {function_id} did not answer within {timeout_ms} ms"
            ) from exc
        except iii_worker.InvocationError as exc:
            raise self._failed(f"remote function {function_id} failed", exc) from exc

    def _live_worker(self, function_id: str) -> iii_worker.Worker:
        worker = self.connection.worker
        if worker is None or not worker.connected:
            self.errors += 1
            raise BridgeError(
                f"cannot call {function_id}: not connected to the remote engine {self.url}"
            )
        return worker

    def _failed(self, what: str, exc: iii_worker.InvocationError) -> BridgeError:
        self.errors += 1
        return BridgeError(f"{what}: {exc.code}: {exc.message}")

    # ------------------------------------------------------------------ exposed functions

    def _exposed(self, entry: ExposeEntry) -> ExposedHandler:
        """The remote engine's handler of ``entry``: call the local function here."""
        timeout = self.config.timeout_ms / 1000

        async def serve(data: Any, ctx: iii_worker.InvocationContext) -> Any:
            self.calls += 1
            if isinstance(data, dict):  # the remote caller's id means nothing here
                data = {k: v for k, v in data.items() if k != "_caller_worker_id"}
            try:
                return await self.engine.call(
                    entry.local_function,
                    data,
                    timeout=timeout,
                    traceparent=ctx.traceparent,
                    baggage=ctx.baggage,
                )
            except InvocationError as exc:
                self.errors += 1
                # The remote caller gets the local error's own code and message.
                raise iii_worker.InvocationError(exc.message, code=exc.code) from exc

        return serve


# ---------------------------------------------------------------------- input decoding


def _input_object(data: Any, function_id: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _bad_input(function_id, "expected an object")
    return data


def _function_id(data: dict[str, Any], function_id: str) -> str:
    value = data.get("function_id", _MISSING)
    if value is _MISSING:
        raise _bad_input(function_id, "missing field `function_id`")
    if not isinstance(value, str) or not value:
        raise _bad_input(function_id, "field `function_id` must be a non-empty string")
    return value


def _timeout_ms(data: dict[str, Any], function_id: str, default: int) -> int:
    value = data.get("timeout_ms")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        detail = f"field `timeout_ms` must be a positive integer, got {value!r}"
        raise _bad_input(function_id, detail)
    return value


def _bad_input(function_id: str, detail: str) -> DeserializationError:
    return DeserializationError(f"Failed to deserialize input for {function_id}: {detail}")
