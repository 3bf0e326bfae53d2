"""Engine observers: objects told about registry changes, invocations and telemetry frames.

Observers are collected once at start-up (from the ``iii_engine_observers`` hook and from modules
that call :meth:`Engine.add_observer`) and called directly: no plugin hook runs per message.
Every method has a no-op default, so an observer overrides only what it needs.  Observer methods
must be quick and must not raise; an exception is logged and otherwise ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iii_core.invocations import Pending
    from iii_core.protocol import ErrorBody
    from iii_core.registries import FunctionEntry, Trigger, Worker


class EngineObserver:
    """Base class with no-op hooks; subclass and override what you need."""

    def worker_connected(self, worker: Worker) -> None:
        """A worker socket was accepted (before its first frame)."""

    def worker_disconnected(self, worker: Worker) -> None:
        """A worker socket closed; its registrations have already been removed."""

    def worker_updated(self, worker: Worker) -> None:
        """``engine::workers::register`` changed the worker's metadata."""

    def function_registered(self, entry: FunctionEntry) -> None:
        """A new function id appeared (not called again for a second owner)."""

    def function_unregistered(self, entry: FunctionEntry) -> None:
        """A function id disappeared (its last owner left)."""

    def trigger_registered(self, trigger: Trigger) -> None:
        """A trigger became active."""

    def trigger_unregistered(self, trigger: Trigger) -> None:
        """A trigger was removed."""

    def invocation_started(self, pending: Pending) -> None:
        """A call is about to be sent; may replace ``pending.traceparent`` (the engine's span)."""

    def invocation_finished(self, pending: Pending, error: ErrorBody | None) -> None:
        """A call ended (``error`` is None on success)."""

    def telemetry_frame(self, worker: Worker, prefix: bytes, payload: bytes) -> None:
        """A binary ``OTLP``/``MTRC``/``LOGS`` frame arrived; ``payload`` is the OTLP JSON."""

    def protocol_error(self, worker: Worker, reason: str) -> None:
        """A frame from ``worker`` was dropped because it was not a valid message."""
