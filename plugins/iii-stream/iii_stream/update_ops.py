"""The ``UpdateOp`` list shared by ``stream::update`` and ``state::update`` (reference §5.6).

``path`` is a top-level key name, never a dotted path.  Ops are applied in order to a copy of
the current value; a bad op list is rejected as a whole before anything is written, so that an
update is all-or-nothing.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

log = logging.getLogger("iii.stream.update")

OP_TYPES = ("set", "merge", "increment", "decrement", "remove")


class UpdateOpsError(ValueError):
    """The ``ops`` list is malformed (names the op index and the problem)."""


def validate_ops(ops: Any) -> list[dict[str, Any]]:
    """Check the shape of every op before any is applied."""
    if not isinstance(ops, list):
        raise UpdateOpsError(f"'ops' must be an array of update ops, got {_kind(ops)}")
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise UpdateOpsError(f"ops[{index}] must be an object, got {_kind(op)}")
        kind = op.get("type")
        if kind not in OP_TYPES:
            raise UpdateOpsError(
                f"ops[{index}].type must be one of {', '.join(OP_TYPES)}, got {kind!r}"
            )
        path = op.get("path")
        if kind == "merge":
            if path is not None and not isinstance(path, str):
                raise UpdateOpsError(f"ops[{index}].path must be a string or null")
        elif not isinstance(path, str):
            raise UpdateOpsError(f"ops[{index}] ({kind}) needs a string 'path'")
        if kind in ("increment", "decrement"):
            by = op.get("by")
            # The reference decodes `by` as an i64: a float fails the whole input.
            if not isinstance(by, int) or isinstance(by, bool):
                raise UpdateOpsError(f"ops[{index}].by must be an integer, got {by!r}")
        if kind in ("set", "merge") and "value" not in op:
            raise UpdateOpsError(f"ops[{index}] ({kind}) needs a 'value'")
    return ops


def apply_ops(current: Any, ops: list[dict[str, Any]]) -> Any:
    """Return the new value: ``current`` (None when missing, then ``{}``) with ``ops`` applied."""
    value: Any = {} if current is None else copy.deepcopy(current)
    for op in ops:
        kind = op["type"]
        path = op.get("path")
        if kind == "set" and path == "" and op["value"] is not None:
            value = copy.deepcopy(op["value"])
            continue
        if not isinstance(value, dict):
            log.warning("update op %s ignored: the value is not an object", kind)
            continue
        if kind == "set":
            value[path] = copy.deepcopy(op["value"])
        elif kind == "merge":
            if path:
                log.warning("merge with a non-empty path (%r) is not supported; ignored", path)
            elif isinstance(op["value"], dict):
                value.update(copy.deepcopy(op["value"]))
            else:
                log.warning("merge ignored: its value is not an object")
        elif kind == "increment":
            old = value.get(path)
            value[path] = old + op["by"] if _is_number(old) else op["by"]
        elif kind == "decrement":
            if path not in value:
                value[path] = -op["by"]
            else:
                old = value[path]
                value[path] = old - op["by"] if _is_number(old) else 0
        else:  # remove
            value.pop(path, None)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
