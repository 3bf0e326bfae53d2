"""The store interface shared by the state adapters and the KV server, and its config.

Every store is a two-level map ``index → key → JSON value`` (``index`` is a state scope or a KV
server index).  Writes return whether the key existed before, so that the state module can tell
``state:created`` from ``state:updated`` even when the stored value is JSON ``null``.
"""

from __future__ import annotations

import builtins
from typing import Any, Protocol

from iii_state.ops import UpdateOp


class StoreError(Exception):
    """A store operation failed (I/O, a full store, a value too large, ...)."""


class Store(Protocol):
    """What the state module and the KV server need from an adapter."""

    async def open(self) -> None:
        """Connect or open files; raise to abort engine start-up."""

    async def close(self) -> None:
        """Release connections and files."""

    async def get(self, index: str, key: str) -> tuple[bool, Any]:
        """``(exists, value)``."""

    async def set(self, index: str, key: str, value: Any) -> tuple[bool, Any]:
        """Store ``value``; return ``(existed, old_value)`` read atomically with the write."""

    async def delete(self, index: str, key: str) -> tuple[bool, Any]:
        """Remove the key; return ``(existed, old_value)``."""

    async def update(self, index: str, key: str, ops: list[UpdateOp]) -> tuple[bool, Any, Any]:
        """Apply ``ops`` atomically (no lost update under concurrency); return
        ``(existed, old_value, new_value)``."""

    async def list(self, index: str) -> list[Any]:
        """Every value of ``index``."""

    async def list_groups(self, prefix: str = "") -> builtins.list[str]:
        """Names of the non-empty indexes starting with ``prefix``."""
