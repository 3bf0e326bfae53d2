"""Registries of workers, functions, trigger types, triggers and services (sans-I/O).

Plain data structures with owner-aware add and remove.  They do no I/O and call nothing: the
engine decides what to send when a registry changes.

Ownership rules (see ``decisions.md``):

* several workers may register one function id; every live registration is kept and calls are
  spread across the owners; a disconnect removes only that worker's registration; the function
  disappears with its last owner;
* a function registered by a module (in-process) cannot be taken over by a worker;
* a trigger whose type does not exist yet is kept as *pending* and activated when the type appears.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from iii_core.errors import RegistrationError

if TYPE_CHECKING:
    from iii_core.invocations import CallContext


class WorkerConnection(Protocol):
    """What the engine needs from a worker's transport: queue a frame, close the socket."""

    def send(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


ModuleHandler = Callable[[Any, "CallContext"], Awaitable[Any]]
"""An in-process function: ``async (data, ctx) -> result`` (raise ``InvocationError`` to fail)."""


class Worker:
    """One worker connection and what it told the engine about itself."""

    __slots__ = (
        "allowed_functions",
        "allowed_registrations",
        "bad_frames",
        "conn",
        "connected_at_ms",
        "function_ids",
        "id",
        "inflight",
        "ip_address",
        "latest_metrics",
        "name",
        "os",
        "over_registration_limit",
        "path",
        "pid",
        "registered_anything",
        "runtime",
        "seen_telemetry",
        "services_declared",
        "status",
        "telemetry",
        "trigger_ids",
        "trigger_type_ids",
        "version",
    )

    def __init__(
        self, worker_id: str, conn: WorkerConnection, ip_address: str = "", path: str = "/"
    ) -> None:
        self.id = worker_id
        self.conn = conn
        self.ip_address = ip_address
        self.path = path
        self.connected_at_ms = int(time.time() * 1000)
        self.name: str | None = None
        self.runtime: str | None = None
        self.version: str | None = None
        self.os: str | None = None
        self.pid: int | None = None
        self.telemetry: Any = None
        self.status = "connected"
        self.function_ids: set[str] = set()
        self.trigger_ids: set[str] = set()
        self.trigger_type_ids: set[str] = set()
        self.inflight: set[str] = set()
        self.latest_metrics: dict[str, Any] | None = None
        self.registered_anything = False
        self.seen_telemetry = False
        self.services_declared = 0
        self.over_registration_limit = False
        self.allowed_functions: frozenset[str] | None = None
        self.allowed_registrations: frozenset[str] | None = None
        self.bad_frames = 0

    @property
    def telemetry_only(self) -> bool:
        """A socket that only carries telemetry frames (the SDKs' second connection)."""
        return self.path == "/otel" or (self.seen_telemetry and not self.registered_anything)

    def info(self) -> dict[str, Any]:
        """The ``WorkerInfo`` shape of ``engine::workers::list``."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "runtime": self.runtime,
            "version": self.version,
            "os": self.os,
            "ip_address": self.ip_address,
            "status": self.status,
            "connected_at_ms": self.connected_at_ms,
            "function_count": len(self.function_ids),
            "functions": sorted(self.function_ids),
            "active_invocations": len(self.inflight),
            "latest_metrics": self.latest_metrics,
        }
        if self.pid is not None:
            out["pid"] = self.pid
        return out


class FunctionEntry:
    """A function id and whoever can run it: worker owners, or one in-process handler."""

    __slots__ = (
        "_next",
        "description",
        "handler",
        "id",
        "metadata",
        "owners",
        "request_format",
        "response_format",
        "timeout_ms",
    )

    def __init__(
        self,
        function_id: str,
        *,
        description: str | None = None,
        request_format: Any = None,
        response_format: Any = None,
        metadata: Any = None,
        handler: ModuleHandler | None = None,
    ) -> None:
        self.id = function_id
        self.description = description
        self.request_format = request_format
        self.response_format = response_format
        self.metadata = metadata
        self.owners: list[Worker] = []
        self.handler = handler
        self.timeout_ms = _timeout_from_metadata(metadata)
        self._next = 0

    def pick_owner(self) -> Worker | None:
        """Round-robin among the owners with the fewest in-flight calls."""
        owners = self.owners
        if len(owners) <= 1:
            return owners[0] if owners else None
        n = len(owners)
        start = self._next % n
        best = owners[start]
        best_load = len(best.inflight)
        for i in range(1, n):
            cand = owners[(start + i) % n]
            load = len(cand.inflight)
            if load < best_load:
                best, best_load = cand, load
        self._next = start + 1
        return best

    def info(self) -> dict[str, Any]:
        return {
            "function_id": self.id,
            "description": self.description,
            "request_format": self.request_format,
            "response_format": self.response_format,
            "metadata": self.metadata,
        }


def _timeout_from_metadata(metadata: Any) -> int | None:
    if isinstance(metadata, dict):
        value = metadata.get("timeout_ms")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class FunctionRegistry:
    """Function id → :class:`FunctionEntry`."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionEntry] = {}

    def get(self, function_id: str) -> FunctionEntry | None:
        return self._functions.get(function_id)

    def __len__(self) -> int:
        return len(self._functions)

    def __iter__(self) -> Iterator[FunctionEntry]:
        return iter(list(self._functions.values()))

    def ids(self) -> frozenset[str]:
        return frozenset(self._functions)

    def add_module_function(self, entry: FunctionEntry) -> None:
        """Register an in-process function; it must not exist yet."""
        if entry.id in self._functions:
            raise RegistrationError(f"function {entry.id!r} is already registered")
        self._functions[entry.id] = entry

    def add_worker_owner(
        self,
        function_id: str,
        worker: Worker,
        *,
        description: str | None,
        request_format: Any,
        response_format: Any,
        metadata: Any,
    ) -> tuple[FunctionEntry, bool]:
        """Add ``worker`` as an owner; return the entry and whether the id is new."""
        entry = self._functions.get(function_id)
        created = entry is None
        if entry is None:
            entry = FunctionEntry(function_id)
            self._functions[function_id] = entry
        elif entry.handler is not None:
            raise RegistrationError(
                f"function {function_id!r} is provided by an engine module and cannot be "
                "registered by a worker"
            )
        # The newest registration's description wins, as a re-registration updates it.
        entry.description = description
        entry.request_format = request_format
        entry.response_format = response_format
        entry.metadata = metadata
        entry.timeout_ms = _timeout_from_metadata(metadata)
        if worker not in entry.owners:
            entry.owners.append(worker)
        worker.function_ids.add(function_id)
        return entry, created

    def remove_owner(self, function_id: str, worker: Worker) -> FunctionEntry | None:
        """Remove ``worker``'s registration; return the entry when the function is gone."""
        worker.function_ids.discard(function_id)
        entry = self._functions.get(function_id)
        if entry is None or worker not in entry.owners:
            return None
        entry.owners.remove(worker)
        if entry.owners:
            return None
        del self._functions[function_id]
        return entry

    def remove_module_function(self, function_id: str) -> FunctionEntry | None:
        entry = self._functions.get(function_id)
        if entry is None or entry.handler is None:
            return None
        del self._functions[function_id]
        return entry


class TriggerRegistrator(Protocol):
    """Who starts and stops triggers of one type: a module, or a worker that provides the type.

    ``register_trigger`` raises (any exception, ideally ``RegistrationError``) to reject a config.
    """

    async def register_trigger(self, trigger: Trigger) -> None: ...

    async def unregister_trigger(self, trigger: Trigger) -> None: ...


class TriggerType:
    __slots__ = ("description", "id", "registrator", "worker")

    def __init__(
        self,
        type_id: str,
        description: str,
        registrator: TriggerRegistrator,
        worker: Worker | None = None,
    ) -> None:
        self.id = type_id
        self.description = description
        self.registrator = registrator
        self.worker = worker


class Trigger:
    """A binding of a trigger type and a config to a function id."""

    __slots__ = ("active", "config", "function_id", "id", "metadata", "trigger_type", "worker_id")

    def __init__(
        self,
        trigger_id: str,
        trigger_type: str,
        function_id: str,
        config: Any,
        worker_id: str | None = None,
        metadata: Any = None,
    ) -> None:
        self.id = trigger_id
        self.trigger_type = trigger_type
        self.function_id = function_id
        self.config = config
        self.worker_id = worker_id
        self.metadata = metadata
        self.active = False

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "trigger_type": self.trigger_type,
            "function_id": self.function_id,
            "config": self.config,
        }
        if not self.active:
            out["status"] = "pending"
        if self.worker_id is not None:
            out["worker_id"] = self.worker_id
        return out


class TriggerTypeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, TriggerType] = {}

    def get(self, type_id: str) -> TriggerType | None:
        return self._types.get(type_id)

    def add(self, trigger_type: TriggerType) -> TriggerType | None:
        """Add or replace; return the replaced type."""
        old = self._types.get(trigger_type.id)
        self._types[trigger_type.id] = trigger_type
        return old

    def remove(self, type_id: str) -> TriggerType | None:
        return self._types.pop(type_id, None)

    def __iter__(self) -> Iterator[TriggerType]:
        return iter(list(self._types.values()))

    def __len__(self) -> int:
        return len(self._types)


class TriggerRegistry:
    """Trigger id → :class:`Trigger`, indexed by type."""

    def __init__(self) -> None:
        self._triggers: dict[str, Trigger] = {}
        self._by_type: dict[str, dict[str, Trigger]] = {}

    def get(self, trigger_id: str) -> Trigger | None:
        return self._triggers.get(trigger_id)

    def add(self, trigger: Trigger) -> None:
        self._triggers[trigger.id] = trigger
        self._by_type.setdefault(trigger.trigger_type, {})[trigger.id] = trigger

    def remove(self, trigger_id: str) -> Trigger | None:
        trigger = self._triggers.pop(trigger_id, None)
        if trigger is not None:
            of_type = self._by_type.get(trigger.trigger_type)
            if of_type is not None:
                of_type.pop(trigger_id, None)
                if not of_type:
                    del self._by_type[trigger.trigger_type]
        return trigger

    def of_type(self, type_id: str) -> list[Trigger]:
        return list(self._by_type.get(type_id, {}).values())

    def __iter__(self) -> Iterator[Trigger]:
        return iter(list(self._triggers.values()))

    def __len__(self) -> int:
        return len(self._triggers)


class ServiceRegistry:
    """Services derived from function ids (``a.b`` → service ``a``) and ``registerservice``."""

    def __init__(self) -> None:
        self._derived: dict[str, set[str]] = {}
        self.declared: dict[str, dict[str, Any]] = {}

    def function_added(self, function_id: str) -> None:
        service, dot, rest = function_id.partition(".")
        if dot and "::" not in service:
            self._derived.setdefault(service, set()).add(rest)

    def function_removed(self, function_id: str) -> None:
        service, dot, rest = function_id.partition(".")
        if dot and service in self._derived:
            names = self._derived[service]
            names.discard(rest)
            if not names:
                del self._derived[service]

    def declare(self, service_id: str, record: dict[str, Any]) -> None:
        self.declared[service_id] = record

    def forget_worker(self, worker_id: str) -> None:
        """Drop the services a disconnected worker declared (else they would pile up)."""
        for service_id in [k for k, v in self.declared.items() if v.get("worker_id") == worker_id]:
            del self.declared[service_id]

    def services(self) -> dict[str, list[str]]:
        return {name: sorted(fns) for name, fns in self._derived.items()}

    def __len__(self) -> int:
        return len(self._derived) + len(self.declared)


class WorkerRegistry:
    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}
        self.spawns_total = 0

    def add(self, worker: Worker) -> None:
        self._workers[worker.id] = worker
        self.spawns_total += 1

    def remove(self, worker_id: str) -> Worker | None:
        return self._workers.pop(worker_id, None)

    def get(self, worker_id: str) -> Worker | None:
        return self._workers.get(worker_id)

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def __len__(self) -> int:
        return len(self._workers)

    def active_count(self) -> int:
        """Workers, not counting sockets that only carry telemetry."""
        return sum(1 for w in self._workers.values() if not w.telemetry_only)
