"""The ``stream::*`` functions (reference §5.7), including custom back-ends.

Before using the adapter, ``set``, ``get``, ``delete``, ``list``, ``list_groups`` and ``update``
look for a function named ``stream::<op>(<stream_name>)`` (what the SDKs' ``create_stream``
registers) and, when it exists, call it with the same input instead.  Events and triggers fire
either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from msgspec import Raw

from iii_core import CallContext, InvocationError
from iii_core.errors import DeserializationError
from iii_stream.update_ops import UpdateOpsError, apply_ops, validate_ops

if TYPE_CHECKING:
    from iii_stream.module import StreamModule

Handler = Callable[[Any, CallContext], Awaitable[Any]]

_NULL = Raw(b"null")  # `stream::send` answers an explicit `"result": null`


def _fields(function_id: str, data: Any, *names: str) -> dict[str, Any]:
    """Decode the input like the reference's typed structs: an object with string fields."""
    if not isinstance(data, dict):
        raise DeserializationError(
            f"Failed to deserialize input for {function_id}: expected an object, got "
            f"{'null' if data is None else type(data).__name__}"
        )
    for name in names:
        value = data.get(name)
        if value is None:
            raise DeserializationError(
                f"Failed to deserialize input for {function_id}: missing field `{name}`"
            )
        if not isinstance(value, str):
            raise DeserializationError(
                f"Failed to deserialize input for {function_id}: field `{name}` must be a string"
            )
    return data


def _forward(data: dict[str, Any]) -> dict[str, Any]:
    """The input passed on to a custom back-end (without the engine's caller annotation)."""
    return {k: v for k, v in data.items() if k != "_caller_worker_id"}


class StreamFunctions:
    def __init__(self, module: StreamModule) -> None:
        self.module = module
        self.engine = module.engine

    def table(self) -> dict[str, tuple[Handler, str]]:
        return {
            "stream::set": (self.set, "Set a stream item and push it to subscribers"),
            "stream::get": (self.get, "Get a stream item"),
            "stream::delete": (self.delete, "Delete a stream item and push the deletion"),
            "stream::list": (self.list, "List the items of a stream group"),
            "stream::list_groups": (self.list_groups, "List the groups of a stream"),
            "stream::list_all": (self.list_all, "List every stream and its groups"),
            "stream::send": (self.send, "Send a custom event to a stream group's subscribers"),
            "stream::update": (self.update, "Apply update ops to a stream item atomically"),
        }

    def custom(self, op: str, stream_name: str) -> str | None:
        function_id = f"stream::{op}({stream_name})"
        return function_id if self.engine.functions.get(function_id) is not None else None

    async def _adapter_call(self, code: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except InvocationError:
            raise
        except Exception as exc:  # a back-end failure becomes the reference code
            raise InvocationError(str(exc) or type(exc).__name__, code=code) from exc

    # ------------------------------------------------------------------ functions

    async def set(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::set", data, "stream_name", "group_id", "item_id")
        stream, group, item = d["stream_name"], d["group_id"], d["item_id"]
        value = d.get("data")
        custom = self.custom("set", stream)
        if custom is not None:
            old, new = _old_new(
                await self.engine.call(custom, _forward(d)), custom, "STREAM_SET_ERROR"
            )
        else:
            old = await self._adapter_call(
                "STREAM_SET_ERROR", self.module.adapter.set(stream, group, item, value)
            )
            new = value
        await self.module.emit(
            stream, group, item, {"type": "create" if old is None else "update", "data": new}
        )
        return {"old_value": old, "new_value": new}

    async def get(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::get", data, "stream_name", "group_id", "item_id")
        return await self.read_item(d["stream_name"], d["group_id"], d["item_id"], _forward(d))

    async def read_item(
        self, stream: str, group: str, item: str, forward: dict[str, Any] | None = None
    ) -> Any:
        custom = self.custom("get", stream)
        if custom is not None:
            payload = forward or {"stream_name": stream, "group_id": group, "item_id": item}
            return await self.engine.call(custom, payload)
        return await self._adapter_call(
            "STREAM_GET_ERROR", self.module.adapter.get(stream, group, item)
        )

    async def delete(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::delete", data, "stream_name", "group_id", "item_id")
        stream, group, item = d["stream_name"], d["group_id"], d["item_id"]
        custom = self.custom("delete", stream)
        if custom is not None:
            result = await self.engine.call(custom, _forward(d))
            if not isinstance(result, dict):
                raise InvocationError(
                    f"custom stream back-end {custom} returned {result!r}; expected {{old_value}}",
                    code="STREAM_DELETE_ERROR",
                )
            old = result.get("old_value")
        else:
            old = await self._adapter_call(
                "STREAM_DELETE_ERROR", self.module.adapter.delete(stream, group, item)
            )
        if old is not None:
            await self.module.emit(stream, group, item, {"type": "delete", "data": old})
        return {"old_value": old}

    async def list(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::list", data, "stream_name", "group_id")
        return await self.read_group(d["stream_name"], d["group_id"], _forward(d))

    async def read_group(
        self, stream: str, group: str, forward: dict[str, Any] | None = None
    ) -> Any:
        custom = self.custom("list", stream)
        if custom is not None:
            payload = forward or {"stream_name": stream, "group_id": group}
            return await self.engine.call(custom, payload)
        return await self._adapter_call(
            "STREAM_GET_GROUP_ERROR", self.module.adapter.list(stream, group)
        )

    async def list_groups(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::list_groups", data, "stream_name")
        custom = self.custom("list_groups", d["stream_name"])
        if custom is not None:
            return await self.engine.call(custom, _forward(d))
        return await self._adapter_call(
            "STREAM_LIST_GROUPS_ERROR", self.module.adapter.list_groups(d["stream_name"])
        )

    async def list_all(self, data: Any, ctx: CallContext) -> Any:
        _fields("stream::list_all", data)
        streams = await self._adapter_call("STREAM_LIST_ALL_ERROR", self.module.adapter.list_all())
        entries = [
            {"id": name, "groups": sorted(groups)} for name, groups in sorted(streams.items())
        ]
        return {"stream": entries, "count": len(entries)}

    async def send(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::send", data, "stream_name", "group_id", "type")
        item = d.get("id")
        if item is not None and not isinstance(item, str):
            raise DeserializationError(
                "Failed to deserialize input for stream::send: field `id` must be a string or null"
            )
        event = {"type": "event", "event": {"type": d["type"], "data": d.get("data")}}
        await self._adapter_call(
            "STREAM_SEND_ERROR", self.module.emit(d["stream_name"], d["group_id"], item, event)
        )
        return _NULL

    async def update(self, data: Any, ctx: CallContext) -> Any:
        d = _fields("stream::update", data, "stream_name", "group_id", "item_id")
        stream, group, item = d["stream_name"], d["group_id"], d["item_id"]
        try:
            ops = validate_ops(d.get("ops"))
        except UpdateOpsError as exc:
            raise DeserializationError(
                f"Failed to deserialize input for stream::update: {exc}"
            ) from None
        custom = self.custom("update", stream)
        if custom is not None:
            old, new = _old_new(
                await self.engine.call(custom, _forward(d)), custom, "STREAM_SET_ERROR"
            )
        else:
            old, new = await self._adapter_call(
                "STREAM_SET_ERROR",
                self.module.adapter.update(stream, group, item, lambda cur: apply_ops(cur, ops)),
            )
        await self.module.emit(
            stream, group, item, {"type": "create" if old is None else "update", "data": new}
        )
        return {"old_value": old, "new_value": new}


def _old_new(result: Any, function_id: str, code: str) -> tuple[Any, Any]:
    if not isinstance(result, dict) or "new_value" not in result:
        raise InvocationError(
            f"custom stream back-end {function_id} returned {result!r}; "
            "expected {old_value?, new_value}",
            code=code,
        )
    return result.get("old_value"), result["new_value"]
