"""The ``UpdateOp`` list of ``state::update`` and ``kv_server::update``, decoded and applied.

Semantics (reference §5.6; ``path`` is a top-level key name, never a dotted path):

* ``{"type": "set", "path": p, "value": v}``: ``p == ""`` with a non-null ``v`` replaces the whole
  value; otherwise key ``p`` of the object is set to ``v`` (``null`` is stored as ``null``).
* ``{"type": "merge", "path": null | "", "value": {...}}``: shallow merge into the object; a
  non-empty path, or a value or current value that is not an object, is ignored with a warning.
* ``{"type": "increment", "path": p, "by": n}``: a missing key becomes ``n``; a number becomes
  ``number + n``; any other value becomes ``n``.
* ``{"type": "decrement", "path": p, "by": n}``: a missing key becomes ``-n``; a number becomes
  ``number - n``; any other value becomes ``0`` (the reference's behaviour, kept as is).
* ``{"type": "remove", "path": p}`` deletes key ``p``.

An update of a missing key starts from ``{}``.  Every op except a root ``set`` needs the current
value to be an object: on a string, number, array or null it is skipped with a warning and the
value is left unchanged.  ``by`` must be an integer in the i64 range (a float, a boolean or a
string fails the whole call with ``deserialization_error``, as the reference's i64 does).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, TypeGuard

import attrs

from iii_state.inputs import bad_input

log = logging.getLogger("iii.state.ops")

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
OP_TYPES = ("set", "merge", "increment", "decrement", "remove")


@attrs.frozen
class UpdateOp:
    """One decoded op; ``path`` is None only for a merge without a path."""

    type: str
    path: str | None
    value: Any = None
    by: int = 0


def parse_ops(raw: Any, function_id: str) -> list[UpdateOp]:
    """Decode ``ops``; any malformed op fails the whole input (nothing is applied)."""
    if not isinstance(raw, list):
        raise bad_input(function_id, "field `ops` must be an array of update ops")
    return [_parse_op(item, index, function_id) for index, item in enumerate(raw)]


def _parse_op(item: Any, index: int, function_id: str) -> UpdateOp:
    where = f"ops[{index}]"
    if not isinstance(item, dict):
        raise bad_input(function_id, f"{where} must be an object")
    kind = item.get("type")
    if kind not in OP_TYPES:
        raise bad_input(
            function_id,
            f"{where}: unknown variant {kind!r}, expected one of {', '.join(OP_TYPES)}",
        )
    path = item.get("path")
    if kind == "merge":
        if path is not None and not isinstance(path, str):
            raise bad_input(function_id, f"{where}: `path` must be a string or null")
        return UpdateOp(kind, path, item.get("value"))
    if not isinstance(path, str):
        raise bad_input(function_id, f"{where}: `path` must be a string")
    if kind in ("increment", "decrement"):
        by = item.get("by")
        if isinstance(by, bool) or not isinstance(by, int) or not I64_MIN <= by <= I64_MAX:
            raise bad_input(function_id, f"{where}: `by` must be an integer (i64), got {by!r}")
        return UpdateOp(kind, path, by=by)
    return UpdateOp(kind, path, item.get("value"))


def apply_ops(current: Any, exists: bool, ops: list[UpdateOp]) -> Any:
    """The value after ``ops``; ``current`` is not modified."""
    value: Any = copy.deepcopy(current) if exists else {}
    for op in ops:
        value = _apply(value, op)
    return value


def _apply(value: Any, op: UpdateOp) -> Any:
    if op.type == "set" and op.path == "" and op.value is not None:
        return op.value
    if not isinstance(value, dict):
        log.warning(
            "state update op %r on path %r skipped: the current value is not an object",
            op.type,
            op.path,
        )
        return value
    if op.type == "set":
        value[op.path] = op.value
    elif op.type == "merge":
        if op.path:
            log.warning("state merge on path %r skipped: only a root merge is supported", op.path)
        elif isinstance(op.value, dict):
            value.update(op.value)
        else:
            log.warning("state merge skipped: the merged value is not an object")
    elif op.type == "increment":
        old = value.get(op.path)
        value[op.path] = _checked(old + op.by) if _is_number(old) else op.by
    elif op.type == "decrement":
        if op.path not in value:
            value[op.path] = -op.by
        else:
            old = value[op.path]
            value[op.path] = _checked(old - op.by) if _is_number(old) else 0
    else:  # remove
        value.pop(op.path, None)
    return value


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked(result: int | float) -> int | float:
    """Integers stay in the i64 range, as in the reference (which cannot store more)."""
    if isinstance(result, int) and not I64_MIN <= result <= I64_MAX:
        raise OverflowError(f"integer overflow: {result} is outside the i64 range")
    return result
