"""The engine's own functions and trigger types (the reference's ``WorkerModule``).

``engine::functions::list``, ``engine::triggers::list``, ``engine::workers::list``,
``engine::workers::register``, ``engine::channels::create`` and the trigger types
``engine::functions-available`` (pushed when the set of functions changes) and
``engine::workers-available``.  Registered through the plugin hooks like every other module.
"""

from __future__ import annotations

import time
from typing import Any

from iii_core.engine import FUNCTIONS_AVAILABLE, WORKERS_AVAILABLE
from iii_core.errors import DeserializationError
from iii_core.hookspecs import ModuleSpec, hookimpl
from iii_core.invocations import CallContext
from iii_core.module import Module
from iii_core.registries import Trigger


def _object(function_id: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DeserializationError(
            f"Failed to deserialize input for {function_id}: expected an object, "
            f"got {type(data).__name__}"
        )
    return data


class _AcceptAll:
    """Registrator of the engine's event trigger types: any config is accepted."""

    async def register_trigger(self, trigger: Trigger) -> None:
        return None

    async def unregister_trigger(self, trigger: Trigger) -> None:
        return None


class EngineFunctionsModule(Module):
    name = "WorkerModule"

    async def initialize(self) -> None:
        engine = self.engine
        reg = engine.register_function
        reg(
            "engine::functions::list",
            self.list_functions,
            description="List registered functions",
        )
        reg("engine::triggers::list", self.list_triggers, description="List triggers")
        reg("engine::workers::list", self.list_workers, description="List connected workers")
        reg(
            "engine::workers::register",
            self.register_worker,
            description="Record the calling worker's metadata",
        )
        reg(
            "engine::channels::create",
            self.create_channel,
            description="Create a data channel and return its writer and reader refs",
        )
        await engine.register_trigger_type(
            FUNCTIONS_AVAILABLE, "Fires when the set of registered functions changes", _AcceptAll()
        )
        await engine.register_trigger_type(
            WORKERS_AVAILABLE,
            "Fires when a worker connects, disconnects or registers",
            _AcceptAll(),
        )

    async def list_functions(self, data: Any, ctx: CallContext) -> Any:
        include = bool(_object("engine::functions::list", data).get("include_internal"))
        return {
            "functions": [
                e.info()
                for e in self.engine.functions
                if include or not e.id.startswith("engine::")
            ]
        }

    async def list_triggers(self, data: Any, ctx: CallContext) -> Any:
        include = bool(_object("engine::triggers::list", data).get("include_internal"))
        return {
            "triggers": [
                t.info()
                for t in self.engine.triggers
                if include or not t.function_id.startswith("engine::")
            ]
        }

    async def list_workers(self, data: Any, ctx: CallContext) -> Any:
        wanted = _object("engine::workers::list", data).get("worker_id")
        workers = [
            w.info()
            for w in self.engine.workers
            if not w.telemetry_only and (wanted is None or w.id == wanted)
        ]
        return {"workers": workers, "timestamp": int(time.time() * 1000)}

    async def register_worker(self, data: Any, ctx: CallContext) -> Any:
        body = _object("engine::workers::register", data)
        worker_id = body.get("_caller_worker_id")
        if not isinstance(worker_id, str):
            raise DeserializationError(
                "Failed to deserialize input for engine::workers::register: missing field "
                "`_caller_worker_id` (only a worker can register itself)"
            )
        worker = self.engine.workers.get(worker_id)
        if worker is not None:
            worker.runtime = str(body.get("runtime") or "unknown")
            worker.version = body.get("version")
            worker.telemetry = body.get("telemetry")
            if body.get("name") is not None:
                worker.name = str(body["name"])
            if body.get("os") is not None:
                worker.os = str(body["os"])
            if isinstance(body.get("pid"), int):
                worker.pid = body["pid"]
            self.engine.worker_updated(worker)
        return {"success": True}

    async def create_channel(self, data: Any, ctx: CallContext) -> Any:
        body = _object("engine::channels::create", data)
        channel = self.engine.channels.create(body.get("buffer_size"))
        return {"writer": channel.ref("write"), "reader": channel.ref("read")}


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::worker::WorkerModule",),
            factory=EngineFunctionsModule,
            default=True,
            mandatory=True,
            description="engine::* functions, engine event trigger types, data channels",
        )
    ]
