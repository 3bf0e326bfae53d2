"""What the stream module needs from a storage back-end, and the envelope bus it carries.

An adapter stores ``stream_name → group_id → item_id → JSON value`` and carries emitted
envelopes to every engine that serves clients of the same data: in-process for the embedded
SQLite adapter, Redis pub/sub for the Redis adapter (so that a browser connected to engine A sees
a ``stream::set`` made through engine B).
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable
from typing import Any

EventSink = Callable[[dict[str, Any], bytes], None]
"""Receives every envelope (decoded, and its JSON text) to deliver to local clients."""


class StreamAdapter(abc.ABC):
    """Storage plus envelope fan-out.  Every method may raise; the module maps errors to the
    reference's ``STREAM_*_ERROR`` codes."""

    @abc.abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Connect / open storage and start delivering published envelopes to ``sink``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivery and release connections (idempotent)."""

    @abc.abstractmethod
    async def get(self, stream: str, group: str, item: str) -> Any:
        """The item's value, or None when it does not exist."""

    @abc.abstractmethod
    async def set(self, stream: str, group: str, item: str, value: Any) -> Any:
        """Store ``value``; return the previous value (None when the item is new)."""

    @abc.abstractmethod
    async def delete(self, stream: str, group: str, item: str) -> Any:
        """Remove the item; return its previous value (None when nothing was there)."""

    @abc.abstractmethod
    async def update(
        self, stream: str, group: str, item: str, apply: Callable[[Any], Any]
    ) -> tuple[Any, Any]:
        """Atomically replace the value with ``apply(old)``; return ``(old, new)``."""

    @abc.abstractmethod
    async def list(self, stream: str, group: str) -> list[Any]:
        """Every value of a group, in insertion order where the back-end keeps one."""

    @abc.abstractmethod
    async def list_groups(self, stream: str) -> builtins.list[str]:
        """Group ids of a stream that hold at least one item, sorted."""

    @abc.abstractmethod
    async def list_all(self) -> dict[str, builtins.list[str]]:
        """Stream name → its sorted group ids."""

    @abc.abstractmethod
    async def publish(self, envelope: dict[str, Any], payload: bytes) -> None:
        """Fan ``envelope`` (encoded as ``payload``) out to every engine's sink, this one too."""
