"""Entry point (group ``iii``): provides ``modules::shell::ExecModule``."""

from __future__ import annotations

from iii_core import ModuleSpec, hookimpl
from iii_exec.module import ExecModule


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::shell::ExecModule", "modules::exec::ExecModule"),
            factory=ExecModule,
            default=False,  # opt-in: it runs arbitrary commands (decisions.md)
            description="Run a command pipeline and restart it when watched files change",
        )
    ]
