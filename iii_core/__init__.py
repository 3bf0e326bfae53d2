"""iii engine core: protocol, registries, invocation routing, transport and plugin framework."""

from iii_core.config import EngineConfig, structure
from iii_core.engine import Engine
from iii_core.errors import ConfigError, InvocationError, RegistrationError
from iii_core.hookspecs import AdapterSpec, ModuleSpec, hookimpl
from iii_core.invocations import CallContext
from iii_core.module import Module
from iii_core.observers import EngineObserver
from iii_core.registries import Trigger, Worker
from iii_core.tasks import OwnedTasks

__all__ = [
    "AdapterSpec",
    "CallContext",
    "ConfigError",
    "Engine",
    "EngineConfig",
    "EngineObserver",
    "InvocationError",
    "Module",
    "ModuleSpec",
    "OwnedTasks",
    "RegistrationError",
    "Trigger",
    "Worker",
    "hookimpl",
    "structure",
]
