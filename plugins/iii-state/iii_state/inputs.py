"""Decoding the input of the ``state::*`` and ``kv_server::*`` functions.

The reference decodes every built-in function's input into a typed struct: unknown keys (such as
the injected ``_caller_worker_id``) are ignored, a missing or mistyped field fails the whole call
with ``deserialization_error`` and the message ``Failed to deserialize input for <id>: <detail>``.
"""

from __future__ import annotations

from typing import Any

from iii_core.errors import DeserializationError

_MISSING: Any = object()


def input_object(data: Any, function_id: str) -> dict[str, Any]:
    """The input as a mapping; anything else (even ``null``) is a decoding error."""
    if not isinstance(data, dict):
        raise bad_input(function_id, f"expected an object, got {_json_type(data)}")
    return data


def require_str(data: dict[str, Any], field: str, function_id: str) -> str:
    value = data.get(field, _MISSING)
    if value is _MISSING:
        raise bad_input(function_id, f"missing field `{field}`")
    if not isinstance(value, str):
        raise bad_input(function_id, f"field `{field}` must be a string, got {_json_type(value)}")
    return value


def require_value(data: dict[str, Any], fields: tuple[str, ...], function_id: str) -> Any:
    """The first present field of ``fields`` (aliases); JSON ``null`` counts as present."""
    for field in fields:
        if field in data:
            return data[field]
    raise bad_input(function_id, f"missing field `{fields[0]}`")


def bad_input(function_id: str, detail: str) -> DeserializationError:
    return DeserializationError(f"Failed to deserialize input for {function_id}: {detail}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
