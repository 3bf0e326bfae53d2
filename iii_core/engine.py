"""The engine: registries, the invocation router, channels and the loaded modules.

:meth:`Engine.call` is the one path every caller uses (workers, HTTP, cron, queue).  Modules
register functions and trigger types through the same registry API that workers use; the engine
holds no module's logic.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

from iii_core.channels import ChannelManager
from iii_core.config import EngineConfig
from iii_core.errors import RegistrationError
from iii_core.invocations import ActionHandler, InvocationRouter
from iii_core.module import Module
from iii_core.observers import EngineObserver
from iii_core.plugins import Plugins
from iii_core.protocol import (
    ErrorBody,
    RegisterFunction,
    RegisterTrigger,
    TriggerRegistrationResult,
    UnregisterTrigger,
    encode,
)
from iii_core.registries import (
    FunctionEntry,
    FunctionRegistry,
    ModuleHandler,
    ServiceRegistry,
    Trigger,
    TriggerRegistrator,
    TriggerRegistry,
    TriggerType,
    TriggerTypeRegistry,
    Worker,
    WorkerConnection,
    WorkerRegistry,
)
from iii_core.tasks import OwnedTasks

log = logging.getLogger("iii.engine")

FUNCTIONS_AVAILABLE = "engine::functions-available"
WORKERS_AVAILABLE = "engine::workers-available"


class ExternalFunctionRegistrar(Protocol):
    """Serves ``registerfunction`` with ``invocation`` (functions the engine calls over HTTP).

    ``register`` may return an awaitable (awaited before the worker's next frame);
    ``unregister`` returns True when ``function_id`` was one of ``worker``'s external functions;
    ``worker_gone`` removes every external function of a disconnected worker.
    """

    def register(self, worker: Worker, msg: RegisterFunction) -> Awaitable[None] | None: ...

    def unregister(self, worker: Worker, function_id: str) -> bool: ...

    def worker_gone(self, worker: Worker) -> None: ...


class Engine:
    """The central process's state and the API modules use."""

    def __init__(self, config: EngineConfig | None = None, plugins: Plugins | None = None) -> None:
        self.config = config or EngineConfig()
        self.plugins = plugins or Plugins()
        self.workers = WorkerRegistry()
        self.functions = FunctionRegistry()
        self.trigger_types = TriggerTypeRegistry()
        self.triggers = TriggerRegistry()
        self.services = ServiceRegistry()
        self.channels = ChannelManager(self.config.max_channels)
        self.observers: list[EngineObserver] = []
        self._tasks = OwnedTasks("engine")
        self.router = InvocationRouter(
            self.functions,
            default_timeout_ms=self.config.invocation_timeout_ms,
            max_pending_per_worker=self.config.max_pending_per_worker,
            spawn=self.spawn,
            observers=self.observers,
        )
        self.modules: list[Module] = []
        self._to_shut_down: list[Module] = []
        self.protocol_errors_total = 0
        self.port: int | None = None
        self.external_function_registrar: ExternalFunctionRegistrar | None = None
        """Set by a module (iii-rest's HTTP functions) that serves ``registerfunction`` messages
        carrying ``invocation``; without one they are logged and ignored."""
        self.started_at = time.time()
        self._functions_changed: asyncio.TimerHandle | None = None
        self._stopping = False

    # ------------------------------------------------------------------ tasks

    def spawn(
        self, coro: Coroutine[Any, Any, Any] | Awaitable[Any], name: str | None = None
    ) -> asyncio.Future[Any]:
        """Run ``coro`` as a task the engine owns: cancelled at shutdown, errors logged."""
        return self._tasks.spawn(coro, name)

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    # ------------------------------------------------------------------ module API

    def add_observer(self, observer: EngineObserver) -> None:
        """Attach an observer (see :class:`~iii_core.observers.EngineObserver`)."""
        self.observers.append(observer)

    def register_action(self, kind: str, handler: ActionHandler) -> None:
        """Handle ``invokefunction`` messages carrying ``action: {type: kind}``."""
        self.router.actions[kind] = handler

    def register_function(
        self,
        function_id: str,
        handler: ModuleHandler,
        *,
        description: str | None = None,
        request_format: Any = None,
        response_format: Any = None,
        metadata: Any = None,
    ) -> FunctionEntry:
        """Register an in-process function ``async (data, ctx) -> result``."""
        entry = FunctionEntry(
            function_id,
            description=description,
            request_format=request_format,
            response_format=response_format,
            metadata=metadata,
            handler=handler,
        )
        self.functions.add_module_function(entry)
        self._function_added(entry)
        return entry

    def unregister_function(self, function_id: str) -> None:
        entry = self.functions.remove_module_function(function_id)
        if entry is not None:
            self._function_removed(entry)

    def _function_added(self, entry: FunctionEntry) -> None:
        self.services.function_added(entry.id)
        log.info("[REGISTERED] Function %s", entry.id)
        for obs in self.observers:
            _safe(obs.function_registered, entry)
        self._schedule_functions_changed()

    def _function_removed(self, entry: FunctionEntry) -> None:
        self.services.function_removed(entry.id)
        log.info("[UNREGISTERED] Function %s", entry.id)
        for obs in self.observers:
            _safe(obs.function_unregistered, entry)
        self._schedule_functions_changed()

    async def register_trigger_type(
        self,
        type_id: str,
        description: str,
        registrator: TriggerRegistrator,
        *,
        worker: Worker | None = None,
    ) -> TriggerType:
        """Provide trigger type ``type_id``; pending triggers of that type are activated."""
        existing = self.trigger_types.get(type_id)
        if existing is not None:
            if existing.worker is None:
                raise RegistrationError(
                    f"trigger type {type_id!r} is provided by an engine module"
                    + ("" if worker is None else " and cannot be registered by a worker")
                )
            if worker is None:
                raise RegistrationError(f"trigger type {type_id!r} is provided by a worker")
            existing.worker.trigger_type_ids.discard(type_id)
        ttype = TriggerType(type_id, description, registrator, worker)
        self.trigger_types.add(ttype)
        if worker is not None:
            worker.trigger_type_ids.add(type_id)
        log.info("[REGISTERED] Trigger type %s", type_id)
        for trigger in self.triggers.of_type(type_id):
            trigger.active = False
            await self._activate(trigger, ttype)
        return ttype

    async def unregister_trigger_type(self, type_id: str, *, worker: Worker | None = None) -> None:
        """Remove a type; its triggers stay, pending, until a provider registers it again."""
        ttype = self.trigger_types.get(type_id)
        if ttype is None or ttype.worker is not worker:
            return
        self.trigger_types.remove(type_id)
        if worker is not None:
            worker.trigger_type_ids.discard(type_id)
        for trigger in self.triggers.of_type(type_id):
            if trigger.active:
                trigger.active = False
                for obs in self.observers:
                    _safe(obs.trigger_unregistered, trigger)
        log.info("[UNREGISTERED] Trigger type %s", type_id)

    async def register_trigger(
        self,
        trigger_type: str,
        function_id: str,
        config: Any,
        *,
        trigger_id: str | None = None,
        worker: Worker | None = None,
        metadata: Any = None,
    ) -> Trigger:
        """Bind a trigger.  It waits, pending, when its type does not exist yet.

        Raises the registrator's error when the type rejects the config (the trigger is dropped).
        """
        trigger = Trigger(
            trigger_id or str(uuid.uuid4()),
            trigger_type,
            function_id,
            config,
            worker.id if worker is not None else None,
            metadata,
        )
        old = self.triggers.get(trigger.id)
        if old is not None:
            await self.unregister_trigger(old.id)
        self.triggers.add(trigger)
        if worker is not None:
            worker.trigger_ids.add(trigger.id)
        ttype = self.trigger_types.get(trigger_type)
        if ttype is None:
            log.info(
                "trigger %s of type %s for %s is pending until its trigger type is registered",
                trigger.id,
                trigger_type,
                function_id,
            )
            return trigger
        error = await self._activate(trigger, ttype)
        if error is not None:
            raise error
        return trigger

    async def _activate(self, trigger: Trigger, ttype: TriggerType) -> Exception | None:
        try:
            await ttype.registrator.register_trigger(trigger)
        except Exception as exc:
            self.triggers.remove(trigger.id)
            owner = self.workers.get(trigger.worker_id) if trigger.worker_id else None
            if owner is not None:
                owner.trigger_ids.discard(trigger.id)
                owner.conn.send(
                    encode(
                        TriggerRegistrationResult(
                            id=trigger.id,
                            trigger_type=trigger.trigger_type,
                            function_id=trigger.function_id,
                            error=ErrorBody(code="trigger_registration_failed", message=str(exc)),
                        )
                    )
                )
            log.warning(
                "trigger %s (%s → %s) rejected: %s",
                trigger.id,
                trigger.trigger_type,
                trigger.function_id,
                exc,
            )
            return exc
        trigger.active = True
        log.info(
            "[REGISTERED] Trigger %s (%s) → %s",
            trigger.id,
            trigger.trigger_type,
            trigger.function_id,
        )
        for obs in self.observers:
            _safe(obs.trigger_registered, trigger)
        return None

    async def unregister_trigger(self, trigger_id: str) -> None:
        """Stop and remove a trigger (unknown ids are ignored)."""
        trigger = self.triggers.get(trigger_id)
        if trigger is None:
            return
        ttype = self.trigger_types.get(trigger.trigger_type)
        if ttype is not None and trigger.active:
            try:
                await ttype.registrator.unregister_trigger(trigger)
            except Exception as exc:
                log.warning("unregistering trigger %s failed, kept: %s", trigger_id, exc)
                return
        self.triggers.remove(trigger_id)
        if trigger.worker_id is not None and (owner := self.workers.get(trigger.worker_id)):
            owner.trigger_ids.discard(trigger_id)
        if trigger.active:
            for obs in self.observers:
                _safe(obs.trigger_unregistered, trigger)
        trigger.active = False

    async def call(
        self,
        function_id: str,
        data: Any = None,
        *,
        timeout: float | None = None,
        traceparent: str | None = None,
        baggage: str | None = None,
        metadata: Any = None,
    ) -> Any:
        """Call any function (worker-owned or in-process) and return its result.

        Raises an :class:`~iii_core.errors.InvocationError` subclass on failure.
        """
        return await self.router.call(
            function_id,
            data,
            timeout=timeout,
            traceparent=traceparent,
            baggage=baggage,
            metadata=metadata,
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's event loop (cached: cheaper than ``asyncio.get_running_loop``)."""
        return self.router.loop

    def start_call(
        self,
        function_id: str,
        data: Any = None,
        *,
        traceparent: str | None = None,
        baggage: str | None = None,
        metadata: Any = None,
    ) -> asyncio.Future[Any]:
        """Like :meth:`call`, as a future (no task for a worker-owned function); cancel it to
        drop the call."""
        return self.router.start(
            function_id, data, traceparent=traceparent, baggage=baggage, metadata=metadata
        )

    def call_void(
        self,
        function_id: str,
        data: Any = None,
        *,
        traceparent: str | None = None,
        baggage: str | None = None,
    ) -> None:
        """Fire-and-forget call."""
        self.router.call_void(function_id, data, traceparent=traceparent, baggage=baggage)

    # ------------------------------------------------------------------ engine events

    def fire_workers_available(self, event: str, worker_id: str) -> None:
        payload = {"event": event, "worker_id": worker_id}
        for trigger in self.triggers.of_type(WORKERS_AVAILABLE):
            if trigger.active:
                self.call_void(trigger.function_id, payload)

    def _schedule_functions_changed(self) -> None:
        """Coalesce a burst of registrations into one ``functions_changed`` push."""
        if self._functions_changed is not None or self._stopping:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._functions_changed = loop.call_later(0.05, self._push_functions_changed)

    def _push_functions_changed(self) -> None:
        self._functions_changed = None
        triggers = [t for t in self.triggers.of_type(FUNCTIONS_AVAILABLE) if t.active]
        if not triggers:
            return
        payload = {
            "event": "functions_changed",
            "functions": [entry.info() for entry in self.functions],
        }
        for trigger in triggers:
            self.call_void(trigger.function_id, payload)

    # ------------------------------------------------------------------ workers

    def worker_connected(self, conn: WorkerConnection, ip_address: str, path: str) -> Worker:
        worker = Worker(str(uuid.uuid4()), conn, ip_address, path)
        self.workers.add(worker)
        if path != "/otel":
            log.info("Worker %s connected from %s", worker.id, ip_address or "?")
        for obs in self.observers:
            _safe(obs.worker_connected, worker)
        if path != "/otel":
            self.fire_workers_available("worker_connected", worker.id)
        return worker

    async def worker_disconnected(self, worker: Worker) -> None:
        """Cleanup in the reference's order: functions, calls, triggers, trigger types."""
        if self.workers.get(worker.id) is None:
            return
        if self.external_function_registrar is not None:
            self.external_function_registrar.worker_gone(worker)
        for function_id in list(worker.function_ids):
            entry = self.functions.remove_owner(function_id, worker)
            if entry is not None:
                self._function_removed(entry)
        self.router.worker_gone(worker)
        for trigger_id in list(worker.trigger_ids):
            await self.unregister_trigger(trigger_id)
            self.triggers.remove(trigger_id)
        for type_id in list(worker.trigger_type_ids):
            await self.unregister_trigger_type(type_id, worker=worker)
        self.services.forget_worker(worker.id)
        self.workers.remove(worker.id)
        if not worker.telemetry_only:
            log.info("Worker %s disconnected", worker.id)
        for obs in self.observers:
            _safe(obs.worker_disconnected, worker)
        if worker.path != "/otel":
            self.fire_workers_available("worker_disconnected", worker.id)

    def worker_updated(self, worker: Worker) -> None:
        for obs in self.observers:
            _safe(obs.worker_updated, worker)
        self.fire_workers_available("worker_metadata_updated", worker.id)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Load plugins, create and initialise modules, then listen for workers."""
        from iii_core.transport import WorkerServer

        self.plugins.load()
        if self.config.modules is None:
            entries = self.plugins.default_module_entries()
        else:
            entries = self.plugins.module_entries(self.config.modules)
        # Create every module first: a bad config fails before anything is bound.
        created = [(entry, self.plugins.create_module(entry, self)) for entry in entries]
        for observer in self.plugins.observers(self):
            self.add_observer(observer)
        self.router.remote_router = self.plugins.remote_router(self)
        self._server = WorkerServer(self)
        if self._server.authenticator.enabled is False and self.config.host not in (
            "127.0.0.1",
            "localhost",
            "::1",
        ):
            log.warning(
                "the worker port is bound to %s without worker auth: any host that can reach "
                "it can register and call functions (set 'auth' in the config)",
                self.config.host,
            )
        try:
            for entry, module in created:
                # Listed first: a module that fails half-way still gets its shutdown.
                self.modules.append(module)
                self._to_shut_down.append(module)
                await module.initialize()
                log.debug("module %s initialised", entry.class_name)
            self.port = await self._server.start(self.config.host, self.config.port)
        except BaseException:
            await self._shutdown_modules()
            raise
        for module in self.modules:
            self.spawn(module.run(), name=f"module {type(module).__name__}")
        self.spawn(self._sweep_channels(), name="channel sweeper")
        await self.plugins.engine_started(self)
        log.info(
            "iii engine listening on ws://%s:%d (%d modules)",
            self.config.host,
            self.port,
            len(self.modules),
        )

    async def _sweep_channels(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.channels.sweep()

    @property
    def stopping(self) -> bool:
        """True from the start of :meth:`stop` (modules tell a shutdown from a worker's fault)."""
        return self._stopping

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, let calls finish within the grace period,
        fail the rest with ``invocation_stopped``, stop modules in reverse order."""
        if self._stopping:
            return
        self._stopping = True
        server = getattr(self, "_server", None)
        if server is not None:
            await server.stop_accepting()
        try:
            await self.plugins.engine_stopping(self)
        except Exception as exc:
            log.error("engine_stopping hook failed: %s", exc)
        deadline = time.monotonic() + self.config.shutdown_grace_ms / 1000
        router = self.router
        while (router.pending or router.module_calls) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if router.pending or router.module_calls:
            log.warning(
                "%d invocations still pending after the grace period; stopping them",
                len(router.pending) + len(router.module_calls),
            )
        await router.stop_module_calls()
        router.stop_all("Invocation stopped: engine shutting down")
        await self._shutdown_modules()
        if server is not None:
            await server.close()
        await self._tasks.cancel_all(timeout=5.0)
        if self._functions_changed is not None:
            self._functions_changed.cancel()
        log.info("iii engine stopped")

    async def _shutdown_modules(self) -> None:
        """Shut modules down in reverse start order, each within 5 s."""
        while self._to_shut_down:
            module = self._to_shut_down.pop()
            try:
                await asyncio.wait_for(module.shutdown(), 5.0)
            except Exception as exc:  # one module's failure must not block the others
                log.error("module %s failed to shut down: %s", type(module).__name__, exc)

    # ------------------------------------------------------------------ gauges

    def gauges(self) -> dict[str, int]:
        """Sizes of every bounded store (for ``iii_*`` gauges and leak tests)."""
        return {
            "workers": len(self.workers),
            "workers_active": self.workers.active_count(),
            "functions": len(self.functions),
            "trigger_types": len(self.trigger_types),
            "triggers": len(self.triggers),
            "services": len(self.services),
            "pending_invocations": len(self.router.pending),
            "channels": len(self.channels),
            "tasks": len(self._tasks),
        }


class WorkerTriggerRegistrator:
    """Forwards ``registertrigger`` / ``unregistertrigger`` to the worker providing a type."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def register_trigger(self, trigger: Trigger) -> None:
        self.worker.conn.send(
            encode(
                RegisterTrigger(
                    id=trigger.id,
                    trigger_type=trigger.trigger_type,
                    function_id=trigger.function_id,
                    config=trigger.config,
                    metadata=trigger.metadata,
                )
            )
        )

    async def unregister_trigger(self, trigger: Trigger) -> None:
        self.worker.conn.send(
            encode(UnregisterTrigger(id=trigger.id, trigger_type=trigger.trigger_type))
        )


def _safe(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        log.error("observer %r failed: %s", fn, exc, exc_info=exc)
