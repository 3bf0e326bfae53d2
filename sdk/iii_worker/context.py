"""The invocation a handler is running, kept in a context variable.

A handler reads its invocation (function id, ids, W3C ``traceparent``/``baggage``, metadata)
through :func:`current_invocation` or through its optional second parameter.  Because it lives in
a :mod:`contextvars` variable, calls made while the handler runs (also from a sync handler's
thread, since ``asyncio.to_thread`` copies the context) forward the trace headers without the
handler passing them along.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class InvocationContext:
    """What the engine told this worker about one incoming invocation."""

    function_id: str
    invocation_id: str | None
    traceparent: str | None = None
    baggage: str | None = None
    metadata: Any = None


_current: ContextVar[InvocationContext | None] = ContextVar("iii_worker_invocation", default=None)


def current_invocation() -> InvocationContext | None:
    """The invocation being handled in this context, or ``None`` outside a handler."""
    return _current.get()


def set_current(ctx: InvocationContext | None) -> None:
    """Bind ``ctx`` for the rest of the current task (each handler runs in its own task)."""
    _current.set(ctx)
