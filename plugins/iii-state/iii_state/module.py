"""``modules::state::StateModule``: the ``state::*`` functions and the ``state`` trigger type.

| function | input | result |
|---|---|---|
| ``state::set`` | ``{scope, key, value}`` (alias ``data``) | ``{old_value, new_value}`` |
| ``state::get`` | ``{scope, key}`` | the value, or no result |
| ``state::delete`` | ``{scope, key}`` | the old value, or no result |
| ``state::update`` | ``{scope, key, ops}`` | ``{old_value, new_value}`` |
| ``state::list`` | ``{scope}`` | every value of the scope |
| ``state::list_groups`` | ``{}`` | ``{groups: [...]}`` (sorted, deduplicated) |

Store failures answer ``SET_ERROR``, ``GET_ERROR``, ``DELETE_ERROR``, ``UPDATE_ERROR``,
``LIST_ERROR`` or ``LIST_GROUPS_ERROR`` as in the reference; malformed input answers
``deserialization_error``.
"""

from __future__ import annotations

from typing import Any

import attrs

from iii_core import CallContext, Engine, InvocationError, Module, structure
from iii_core.errors import ConfigError
from iii_state.inputs import input_object, require_str, require_value
from iii_state.ops import parse_ops
from iii_state.store import Store
from iii_state.triggers import TRIGGER_TYPE, StateTriggers

DEFAULT_ADAPTER = "modules::state::adapters::KvStore"


@attrs.define(frozen=True)
class StateModuleConfig:
    """``adapter``: ``{class, config}`` (default the embedded SQLite ``KvStore`` in
    ``./data/state.db``); ``max_pending_events``: bound on trigger dispatches waiting to run;
    ``handler_timeout_ms``: deadline of each condition and handler call (null: none)."""

    adapter: dict[str, Any] | None = None
    max_pending_events: int = 10_000
    handler_timeout_ms: int | None = 60_000


class StateModule(Module):
    """Server-side key/value state grouped by scope, with change triggers."""

    name = "StateModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        where = "modules::state::StateModule config"
        self.config = structure(StateModuleConfig, config, where)
        if self.config.max_pending_events < 1:
            raise ConfigError(f"{where}: key 'max_pending_events' must be at least 1")
        self.store: Store = engine.plugins.create_adapter(
            "state", self.config.adapter, where, default_class=DEFAULT_ADAPTER
        )
        self.triggers = StateTriggers(
            engine,
            max_pending_events=self.config.max_pending_events,
            handler_timeout_ms=self.config.handler_timeout_ms,
        )

    async def initialize(self) -> None:
        await self.store.open()
        await self.engine.register_trigger_type(
            TRIGGER_TYPE,
            "State changes (state:created, state:updated, state:deleted)",
            self.triggers,
        )
        register = self.engine.register_function
        register("state::set", self.set, description="Set a value in state")
        register("state::get", self.get, description="Get a value from state")
        register("state::delete", self.delete, description="Delete a value from state")
        register("state::update", self.update, description="Update a value in state")
        register("state::list", self.list, description="List the values of a scope")
        register("state::list_groups", self.list_groups, description="List all state scopes")

    async def shutdown(self) -> None:
        await self.store.close()

    def gauges(self) -> dict[str, int]:
        t = self.triggers
        return {
            "state_triggers": len(t.triggers),
            "state_pending_events": t.pending_events,
            "state_events_dispatched_total": t.events_dispatched,
            "state_events_dropped_total": t.events_dropped,
            "state_handler_errors_total": t.handler_errors,
        }

    # ------------------------------------------------------------------ functions

    async def set(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "state::set")
        scope = require_str(data, "scope", "state::set")
        key = require_str(data, "key", "state::set")
        value = require_value(data, ("value", "data"), "state::set")
        try:
            existed, old = await self.store.set(scope, key, value)
        except Exception as exc:
            raise InvocationError(f"Failed to set value: {exc}", code="SET_ERROR") from exc
        self._emit("state:updated" if existed else "state:created", scope, key, old, value, ctx)
        return {"old_value": old, "new_value": value}

    async def get(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "state::get")
        scope = require_str(data, "scope", "state::get")
        key = require_str(data, "key", "state::get")
        try:
            _exists, value = await self.store.get(scope, key)
        except Exception as exc:
            raise InvocationError(f"Failed to get value: {exc}", code="GET_ERROR") from exc
        return value

    async def delete(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "state::delete")
        scope = require_str(data, "scope", "state::delete")
        key = require_str(data, "key", "state::delete")
        try:
            _existed, old = await self.store.delete(scope, key)
        except Exception as exc:
            raise InvocationError(f"Failed to delete value: {exc}", code="DELETE_ERROR") from exc
        # The reference emits state:deleted even when the key did not exist (old_value null).
        self._emit("state:deleted", scope, key, old, None, ctx)
        return old

    async def update(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "state::update")
        scope = require_str(data, "scope", "state::update")
        key = require_str(data, "key", "state::update")
        ops = parse_ops(require_value(data, ("ops",), "state::update"), "state::update")
        try:
            existed, old, new = await self.store.update(scope, key, ops)
        except Exception as exc:
            raise InvocationError(f"Failed to update value: {exc}", code="UPDATE_ERROR") from exc
        self._emit("state:updated" if existed else "state:created", scope, key, old, new, ctx)
        return {"old_value": old, "new_value": new}

    async def list(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "state::list")
        scope = require_str(data, "scope", "state::list")
        try:
            return await self.store.list(scope)
        except Exception as exc:
            raise InvocationError(f"Failed to list values: {exc}", code="LIST_ERROR") from exc

    async def list_groups(self, data: Any, ctx: CallContext) -> Any:
        input_object(data, "state::list_groups")
        try:
            groups = await self.store.list_groups()
        except Exception as exc:
            raise InvocationError(
                f"Failed to list groups: {exc}", code="LIST_GROUPS_ERROR"
            ) from exc
        return {"groups": sorted(set(groups))}

    def _emit(
        self, event_type: str, scope: str, key: str, old: Any, new: Any, ctx: CallContext
    ) -> None:
        event = {
            "type": "state",
            "event_type": event_type,
            "scope": scope,
            "key": key,
            "old_value": old,
            "new_value": new,
        }
        self.triggers.emit(event, ctx.traceparent)
