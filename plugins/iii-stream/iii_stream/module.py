"""``modules::stream::StreamModule``: stream functions, trigger types and the client server."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from iii_core import Engine, InvocationError, Module, structure
from iii_stream.adapter import StreamAdapter
from iii_stream.config import StreamConfig
from iii_stream.connections import Subscription
from iii_stream.functions import StreamFunctions
from iii_stream.server import AuthRejected, StreamServer, envelope
from iii_stream.triggers import StreamTriggers

log = logging.getLogger("iii.stream")

SQLITE_CLASS = "modules::stream::adapters::SqliteAdapter"
_encode = msgspec.json.encode


class StreamModule(Module):
    name = "StreamModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        where = "modules::stream::StreamModule config"
        self.config = structure(StreamConfig, config, where)
        self.adapter: StreamAdapter = engine.plugins.create_adapter(
            "stream", self.config.adapter, where, default_class=SQLITE_CLASS
        )
        self.functions = StreamFunctions(self)
        self.triggers = StreamTriggers(engine, self.config.max_pending_trigger_events)
        self.server = StreamServer(self.config, self)
        self.port: int | None = None

    async def initialize(self) -> None:
        await self.adapter.start(self._deliver)
        for function_id, (handler, description) in self.functions.table().items():
            self.engine.register_function(function_id, handler, description=description)
        await self.triggers.register_types()
        self.port = await self.server.start()
        log.info("stream clients: ws://%s:%d/", self.config.host, self.port)

    async def shutdown(self) -> None:
        await self.server.close()
        await self.adapter.close()

    # ------------------------------------------------------------------ events

    async def emit(self, stream: str, group: str, item: str | None, event: dict[str, Any]) -> None:
        """Publish an envelope to every engine's clients and run the local triggers."""
        env = envelope(stream, group, item, event)
        await self.adapter.publish(env, _encode(env))
        self.triggers.fire(env)

    def _deliver(self, env: dict[str, Any], payload: bytes) -> None:
        self.server.deliver(env, payload)

    # ------------------------------------------------------------------ StreamHost

    async def authenticate(self, request_info: dict[str, Any]) -> Any:
        function_id = self.config.auth_function
        assert function_id is not None
        try:
            result = await self.engine.call(function_id, request_info)
        except InvocationError as exc:
            raise AuthRejected(f"auth function failed: {exc.message}") from exc
        # decisions.md: false, an error, or {"authorized": false} rejects the upgrade.
        if result is False:
            raise AuthRejected("refused by the auth function")
        if isinstance(result, dict):
            if result.get("authorized") is False:
                raise AuthRejected("refused by the auth function")
            return result.get("context")
        return None

    async def join_authorized(self, sub: Subscription) -> bool:
        return await self.triggers.join_authorized(sub.event_payload())

    async def left(self, sub: Subscription) -> None:
        await self.triggers.left(sub.event_payload())

    async def sync_value(self, sub: Subscription) -> tuple[bool, Any]:
        try:
            if sub.item_id is not None:
                value = await self.functions.read_item(sub.stream_name, sub.group_id, sub.item_id)
            else:
                value = await self.functions.read_group(sub.stream_name, sub.group_id)
        except Exception as exc:  # reference: no sync, subscription kept
            log.warning(
                "stream sync for %s/%s failed, no sync sent: %s",
                sub.stream_name,
                sub.group_id,
                exc,
            )
            return False, None
        return True, value

    def gauges(self) -> dict[str, int]:
        """Sizes of the module's bounded stores."""
        return {
            "stream_connections": len(self.server.connections),
            "stream_subscriptions": self.server.index.count,
            "stream_pending_trigger_events": self.triggers.pending_events,
            "stream_slow_clients_disconnected_total": self.server.index.slow_clients_disconnected,
        }
