"""Entry point of the ``iii-bridge`` distribution: the bridge client module."""

from __future__ import annotations

from iii_bridge.module import BridgeClientModule
from iii_core import ModuleSpec, hookimpl


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=(
                "modules::bridge_client::BridgeClientModule",
                "modules::bridge::BridgeClientModule",
            ),
            factory=BridgeClientModule,
            default=False,  # it needs another engine to talk to
            description="connects to another iii engine as a worker (bridge.invoke, forwards, "
            "exposed functions)",
        )
    ]
