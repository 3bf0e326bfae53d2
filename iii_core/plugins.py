"""The plugin manager: entry-point discovery and class-string resolution.

Set ``III_DISABLE_PLUGINS=name1,name2`` to block entry points by name, and ``III_TRACE_HOOKS=1``
to log every hook call.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from iii_core import hookspecs
from iii_core.config import ModuleEntry
from iii_core.errors import ConfigError, PluginError
from iii_core.hookspecs import AdapterSpec, ModuleSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

    from iii_core.engine import Engine
    from iii_core.module import Module

log = logging.getLogger("iii.plugins")

ENTRY_POINT_GROUP = "iii"

#: Class strings of the project's own modules and adapters, and the distribution providing each,
#: so that a missing one gets an install hint.
KNOWN_DISTRIBUTIONS: dict[str, str] = {
    "modules::rest_api::RestApiModule": "iii-rest",
    "modules::api::RestApiModule": "iii-rest",
    "modules::http_functions::HttpFunctionsModule": "iii-rest",
    "modules::queue::QueueModule": "iii-queue",
    "modules::pubsub::PubSubModule": "iii-queue",
    "adapters::redis::RedisQueueAdapter": "iii-queue",
    "modules::queue::RedisAdapter": "iii-queue",
    "modules::cron::CronModule": "iii-cron",
    "modules::cron::RedisCronAdapter": "iii-cron",
    "modules::stream::StreamModule": "iii-stream",
    "modules::observability::OtelModule": "iii-otel",
    "modules::shell::ExecModule": "iii-exec",
    "modules::exec::ExecModule": "iii-exec",
    "modules::state::StateModule": "iii-state",
    "modules::kv_server::KvServer": "iii-state",
}


@attrs.frozen
class Installed:
    """A spec and the distribution that provides it."""

    spec: Any
    distribution: str


class Plugins:
    """Typed wrapper around the pluggy ``PluginManager``."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("iii")
        self.pm.add_hookspecs(hookspecs.IIIHookSpec)
        self.modules: dict[str, Installed] = {}
        self.adapters: dict[tuple[str, str], Installed] = {}
        self._loaded = False

    def load(self, extra_plugins: list[object] | None = None) -> None:
        """Discover plugins through entry points (once) and index their specs."""
        if self._loaded:
            return
        self._loaded = True
        for name in filter(None, os.environ.get("III_DISABLE_PLUGINS", "").split(",")):
            self.pm.set_blocked(name.strip())
        for plugin in extra_plugins or []:
            self.pm.register(plugin)
        dists: dict[int, str] = {}
        for distribution in importlib.metadata.distributions():
            dist_name = distribution.metadata["name"]
            for ep in distribution.entry_points:
                if ep.group != ENTRY_POINT_GROUP or self.pm.is_blocked(ep.name):
                    continue
                if self.pm.get_plugin(ep.name) is not None:
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:
                    raise PluginError(
                        f"plugin {ep.name!r} of distribution {dist_name!r} failed to load "
                        f"({ep.value}): {exc}"
                    ) from exc
                self.pm.register(plugin, name=ep.name)
                dists[id(plugin)] = dist_name
        try:
            self.pm.check_pending()
        except Exception as exc:
            raise PluginError(f"an '{ENTRY_POINT_GROUP}' plugin is invalid: {exc}") from exc
        if os.environ.get("III_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(lambda msg: log.info("hook: %s", msg.rstrip()))
            self.pm.enable_tracing()
        for impl in self.pm.hook.iii_module_specs.get_hookimpls():
            dist = dists.get(id(impl.plugin), impl.plugin_name)
            for spec in self._call(impl, "iii_module_specs"):
                if not isinstance(spec, ModuleSpec):
                    raise PluginError(f"plugin {dist}: iii_module_specs returned {spec!r}")
                for name in spec.class_names:
                    self.modules[name] = Installed(spec, dist)
        for impl in self.pm.hook.iii_adapter_specs.get_hookimpls():
            dist = dists.get(id(impl.plugin), impl.plugin_name)
            for spec in self._call(impl, "iii_adapter_specs"):
                if not isinstance(spec, AdapterSpec):
                    raise PluginError(f"plugin {dist}: iii_adapter_specs returned {spec!r}")
                for name in spec.class_names:
                    self.adapters[(spec.kind, name)] = Installed(spec, dist)

    @staticmethod
    def _call(impl: pluggy.HookImpl, hook: str) -> list[Any]:
        try:
            return list(cast("Iterable[Any]", impl.function() or []))
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name}: {hook} failed: {exc}") from exc

    # ------------------------------------------------------------------ modules

    def default_module_entries(self) -> list[ModuleEntry]:
        """One entry per distinct default module, in a stable order."""
        return self._entries(lambda spec: spec.default or spec.mandatory)

    def module_entries(self, configured: list[ModuleEntry]) -> list[ModuleEntry]:
        """The mandatory modules first, then the configured ones (in file order)."""
        listed = set()
        for entry in configured:
            installed = self.modules.get(entry.class_name)
            if installed is not None:
                listed.update(installed.spec.class_names)
        mandatory = self._entries(
            lambda spec: spec.mandatory and not listed.intersection(spec.class_names)
        )
        return mandatory + list(configured)

    def _entries(self, wanted: Any) -> list[ModuleEntry]:
        seen: set[int] = set()
        entries = []
        # Mandatory modules first, so that every other module can rely on them.
        ordered = sorted(self.modules.items(), key=lambda kv: (not kv[1].spec.mandatory, kv[0]))
        for name, installed in ordered:
            spec: ModuleSpec = installed.spec
            if wanted(spec) and id(spec) not in seen and name == spec.class_names[0]:
                seen.add(id(spec))
                entries.append(ModuleEntry(name, None, f"<default configuration>: {name}"))
        return entries

    def create_module(self, entry: ModuleEntry, engine: Engine) -> Module:
        installed = self.modules.get(entry.class_name)
        if installed is None:
            raise PluginError(self._unknown("module", entry.class_name, self.modules, entry.where))
        return installed.spec.factory(engine, entry.config)

    # ------------------------------------------------------------------ adapters

    def create_adapter(
        self, kind: str, adapter_config: Any, where: str, default_class: str | None = None
    ) -> Any:
        """Build the adapter an ``adapter: {class, config}`` mapping selects.

        ``adapter_config`` None selects the kind's default adapter (``default_class`` or the spec
        marked default).
        """
        if adapter_config is None:
            class_name = default_class or next(
                (n for (k, n), i in self.adapters.items() if k == kind and i.spec.default), None
            )
            if class_name is None:
                raise ConfigError(f"{where}: no default {kind} adapter is installed")
            config: Any = {}
        else:
            if not isinstance(adapter_config, dict) or not isinstance(
                adapter_config.get("class"), str
            ):
                raise ConfigError(
                    f"{where}: 'adapter' must be a mapping with a 'class' string, "
                    f"got {adapter_config!r}"
                )
            extra = set(adapter_config) - {"class", "config"}
            if extra:
                raise ConfigError(
                    f"{where}: unknown key(s) {', '.join(sorted(extra))} in 'adapter' "
                    "(allowed: class, config)"
                )
            class_name = adapter_config["class"]
            config = adapter_config.get("config") or {}
        installed = self.adapters.get((kind, class_name))
        if installed is None:
            available = {n: i for (k, n), i in self.adapters.items() if k == kind}
            raise ConfigError(self._unknown(f"{kind} adapter", class_name, available, where))
        return installed.spec.factory(config, f"{where}.adapter.config")

    @staticmethod
    def _unknown(what: str, name: str, installed: dict[str, Any], where: str) -> str:
        listing = ", ".join(sorted(installed)) or "none"
        hint = ""
        dist = KNOWN_DISTRIBUTIONS.get(name)
        if dist:
            hint = f" (it is provided by the '{dist}' distribution: pip install {dist})"
        return f"{where}: unknown {what} class {name!r}{hint}. Installed: {listing}"

    # ------------------------------------------------------------------ lifecycle

    def observers(self, engine: Engine) -> list[Any]:
        out: list[Any] = []
        for result in self.pm.hook.iii_engine_observers(engine=engine):
            out.extend(result or [])
        return out

    def remote_router(self, engine: Engine) -> Any:
        return self.pm.hook.iii_remote_router(engine=engine)

    async def engine_started(self, engine: Engine) -> None:
        for result in self.pm.hook.iii_engine_started(engine=engine):
            if inspect.isawaitable(result):
                await result

    async def engine_stopping(self, engine: Engine) -> None:
        for result in self.pm.hook.iii_engine_stopping(engine=engine):
            if inspect.isawaitable(result):
                await result

    def listing(self) -> list[dict[str, str]]:
        """Installed module and adapter classes with their distributions (for ``iii modules``)."""
        rows = []
        for name, installed in sorted(self.modules.items()):
            rows.append(
                {
                    "kind": "module",
                    "class": name,
                    "distribution": installed.distribution,
                    "default": "yes" if installed.spec.default else "",
                    "description": installed.spec.description,
                }
            )
        for (kind, name), installed in sorted(self.adapters.items()):
            rows.append(
                {
                    "kind": f"{kind} adapter",
                    "class": name,
                    "distribution": installed.distribution,
                    "default": "yes" if installed.spec.default else "",
                    "description": installed.spec.description,
                }
            )
        return rows
