"""Hook specifications of the ``iii`` plugin system (entry-point group ``iii``).

A distribution provides modules or adapters by declaring, in its ``pyproject.toml``::

    [project.entry-points.iii]
    my_plugin = "my_package.plugin"

where ``my_package.plugin`` defines functions decorated with :data:`hookimpl`.  Hooks are for
wiring at start-up and shutdown only: nothing calls a hook per message.  A hook implementation may
return a value or an awaitable (``iii_engine_started`` / ``iii_engine_stopping`` are awaited).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

if TYPE_CHECKING:
    from iii_core.engine import Engine
    from iii_core.invocations import RemoteRouter
    from iii_core.module import Module
    from iii_core.observers import EngineObserver

hookspec = pluggy.HookspecMarker("iii")
hookimpl = pluggy.HookimplMarker("iii")


@attrs.frozen
class ModuleSpec:
    """A module class a plugin provides.

    ``class_names``: every class string that selects it (the first is the documented one; the
    others are aliases such as the reference engine's spelling).  ``factory(engine, config)`` builds
    the module; it validates ``config`` and does no I/O.  ``default``: the module is loaded by the
    default configuration (it must then work with no config and no external service).
    ``mandatory``: loaded whatever the configuration says.
    """

    class_names: tuple[str, ...]
    factory: Callable[[Engine, dict[str, Any] | None], Module]
    default: bool = False
    description: str = ""
    mandatory: bool = False
    """Always loaded, even when a config file does not list it (the engine's own functions)."""


@attrs.frozen
class AdapterSpec:
    """An adapter class a plugin provides for a module of kind ``kind`` (``queue``, ``cron``, ...).

    ``factory(config, where)`` builds the adapter from its ``config`` mapping; ``where`` locates
    that mapping in the config file for error messages.  ``default`` marks the kind's default.
    """

    kind: str
    class_names: tuple[str, ...]
    factory: Callable[[dict[str, Any], str], Any]
    default: bool = False
    description: str = ""


class IIIHookSpec:
    """The hooks.  Each returns a value per plugin unless marked first-result."""

    @hookspec
    def iii_module_specs(self) -> list[ModuleSpec]:  # type: ignore[empty-body]
        """Return the module classes this plugin provides.  Called once at start-up."""

    @hookspec
    def iii_adapter_specs(self) -> list[AdapterSpec]:  # type: ignore[empty-body]
        """Return the adapter classes this plugin provides.  Called once at start-up."""

    @hookspec
    def iii_engine_observers(self, engine: Engine) -> list[EngineObserver]:  # type: ignore[empty-body]
        """Return observers to attach to ``engine``, after modules were created and before they
        are initialised.  Called once."""

    @hookspec
    def iii_engine_started(self, engine: Engine) -> Any:
        """The engine listens and every module is initialised.  May return an awaitable."""

    @hookspec
    def iii_engine_stopping(self, engine: Engine) -> Any:
        """Shutdown began (no new connections).  May return an awaitable."""

    @hookspec(firstresult=True)
    def iii_remote_router(self, engine: Engine) -> RemoteRouter | None:
        """Return a router consulted when a called function has no local owner (the seam for a
        multi-engine backplane).  The first non-None result wins."""
