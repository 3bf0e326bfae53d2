"""The one source of truth for what this worker registered.

Every ``register_*`` call lands here first; the frames sent on a new connection are derived from
this state alone (trigger types, then functions, then triggers: a trigger's type and function are
known to the engine before the trigger arrives).  Unregistering removes the entry, so a later
reconnect no longer replays it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from iii_core.protocol import Message, RegisterFunction, RegisterTrigger, RegisterTriggerType

Handler = Callable[..., Any]
"""``(data)`` or ``(data, ctx: InvocationContext)``, sync or ``async``, returning JSON-able data."""


@dataclass(frozen=True, slots=True)
class TriggerConfig:
    """A trigger the engine asks a trigger-type provider to start or stop."""

    id: str
    trigger_type: str
    function_id: str
    config: Any


class TriggerHandler(Protocol):
    """What :meth:`Worker.register_trigger_type` needs: start and stop one trigger.

    Either method may be ``async``.  Raising from ``register_trigger`` rejects the trigger (the
    engine gets ``triggerregistrationresult`` with code ``trigger_registration_failed``).
    """

    def register_trigger(self, trigger: TriggerConfig) -> Awaitable[None] | None: ...

    def unregister_trigger(self, trigger: TriggerConfig) -> Awaitable[None] | None: ...


@dataclass(slots=True)
class FunctionEntry:
    id: str
    handler: Handler
    wants_context: bool
    is_async: bool
    message: RegisterFunction


@dataclass(slots=True)
class TriggerTypeEntry:
    id: str
    handler: TriggerHandler
    message: RegisterTriggerType
    active: dict[str, TriggerConfig] = field(default_factory=dict)


def wants_context(handler: Handler) -> bool:
    """True when the handler takes a second positional parameter (the InvocationContext)."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    return len(positional) >= 2


def is_async_handler(handler: Handler) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class Registrations:
    """Trigger types, functions and triggers of one worker, in registration order."""

    def __init__(self) -> None:
        self.trigger_types: dict[str, TriggerTypeEntry] = {}
        self.functions: dict[str, FunctionEntry] = {}
        self.triggers: dict[str, RegisterTrigger] = {}

    def add_function(self, entry: FunctionEntry) -> None:
        if not entry.id.strip():
            raise ValueError("function id must not be blank")
        if entry.id in self.functions:
            raise ValueError(f"function {entry.id!r} is already registered by this worker")
        self.functions[entry.id] = entry

    def add_trigger_type(self, entry: TriggerTypeEntry) -> None:
        if not entry.id.strip():
            raise ValueError("trigger type id must not be blank")
        if entry.id in self.trigger_types:
            raise ValueError(f"trigger type {entry.id!r} is already registered by this worker")
        self.trigger_types[entry.id] = entry

    def add_trigger(self, message: RegisterTrigger) -> None:
        if not message.trigger_type.strip() or not message.function_id.strip():
            raise ValueError("a trigger needs a trigger type and a function id")
        self.triggers[message.id] = message

    def replay(self) -> Iterator[Message]:
        """Every registration message, in the order a new connection must receive them."""
        for tt in self.trigger_types.values():
            yield tt.message
        for fn in self.functions.values():
            yield fn.message
        yield from self.triggers.values()
