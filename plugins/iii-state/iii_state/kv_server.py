"""``modules::kv_server::KvServer``: the reference's ``kv_server::*`` functions on the embedded
SQLite store (its own database, ``./data/kv_server.db`` by default).

| function | input | result |
|---|---|---|
| ``kv_server::get`` | ``{index, key}`` | the value, or no result |
| ``kv_server::set`` | ``{index, key, value}`` | ``{old_value, new_value}`` |
| ``kv_server::delete`` | ``{index, key}`` | ``{old_value}`` |
| ``kv_server::update`` | ``{index, key, ops}`` | ``{old_value, new_value}`` |
| ``kv_server::list`` | ``{index}`` | every value of the index, in insertion order |
| ``kv_server::list_keys_with_prefix`` | ``{prefix}`` | the **index names** starting with it |

The update ops are those of ``state::update`` (:mod:`iii_state.ops`).  Store failures answer the
state module's codes (``SET_ERROR``, ...).
"""

from __future__ import annotations

from typing import Any

from iii_core import CallContext, Engine, InvocationError, Module
from iii_state.inputs import input_object, require_str, require_value
from iii_state.ops import parse_ops
from iii_state.sqlite_store import SqliteStore, sqlite_config

DEFAULT_PATH = "./data/kv_server.db"


class KvServer(Module):
    """A general-purpose key/value store shared by workers (index → key → JSON)."""

    name = "KvServer"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = sqlite_config(config, "modules::kv_server::KvServer config")
        self.store = SqliteStore(self.config, DEFAULT_PATH)

    async def initialize(self) -> None:
        await self.store.open()
        register = self.engine.register_function
        register("kv_server::get", self.get, description="Get a value")
        register("kv_server::set", self.set, description="Set a value")
        register("kv_server::delete", self.delete, description="Delete a value")
        register("kv_server::update", self.update, description="Update a value with ops")
        register("kv_server::list", self.list, description="List the values of an index")
        register(
            "kv_server::list_keys_with_prefix",
            self.list_keys_with_prefix,
            description="List the index names starting with a prefix",
        )

    async def shutdown(self) -> None:
        await self.store.close()

    def _index_key(self, data: Any, function_id: str) -> tuple[str, str]:
        data = input_object(data, function_id)
        return require_str(data, "index", function_id), require_str(data, "key", function_id)

    async def get(self, data: Any, ctx: CallContext) -> Any:
        index, key = self._index_key(data, "kv_server::get")
        try:
            return (await self.store.get(index, key))[1]
        except Exception as exc:
            raise InvocationError(f"Failed to get value: {exc}", code="GET_ERROR") from exc

    async def set(self, data: Any, ctx: CallContext) -> Any:
        index, key = self._index_key(data, "kv_server::set")
        value = require_value(data, ("value",), "kv_server::set")
        try:
            _existed, old = await self.store.set(index, key, value)
        except Exception as exc:
            raise InvocationError(f"Failed to set value: {exc}", code="SET_ERROR") from exc
        return {"old_value": old, "new_value": value}

    async def delete(self, data: Any, ctx: CallContext) -> Any:
        index, key = self._index_key(data, "kv_server::delete")
        try:
            _existed, old = await self.store.delete(index, key)
        except Exception as exc:
            raise InvocationError(f"Failed to delete value: {exc}", code="DELETE_ERROR") from exc
        return {"old_value": old}

    async def update(self, data: Any, ctx: CallContext) -> Any:
        index, key = self._index_key(data, "kv_server::update")
        ops = parse_ops(require_value(data, ("ops",), "kv_server::update"), "kv_server::update")
        try:
            _existed, old, new = await self.store.update(index, key, ops)
        except Exception as exc:
            raise InvocationError(f"Failed to update value: {exc}", code="UPDATE_ERROR") from exc
        return {"old_value": old, "new_value": new}

    async def list(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "kv_server::list")
        index = require_str(data, "index", "kv_server::list")
        try:
            return await self.store.list(index)
        except Exception as exc:
            raise InvocationError(f"Failed to list values: {exc}", code="LIST_ERROR") from exc

    async def list_keys_with_prefix(self, data: Any, ctx: CallContext) -> Any:
        data = input_object(data, "kv_server::list_keys_with_prefix")
        prefix = require_str(data, "prefix", "kv_server::list_keys_with_prefix")
        try:
            return await self.store.list_groups(prefix)
        except Exception as exc:
            raise InvocationError(f"Failed to list keys: {exc}", code="LIST_ERROR") from exc
