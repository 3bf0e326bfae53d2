"""The plugin: tells the engine which class strings this distribution provides."""

from __future__ import annotations

from iii_core import ModuleSpec, hookimpl
from iii_example_greeter.module import GreeterModule


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::greeter::GreeterModule", "example::Greeter"),
            factory=GreeterModule,
            description="Example third-party module: greeter::hello",
        )
    ]
