"""``GreeterModule``: one function and one trigger type, configured from ``config.yaml``."""

from __future__ import annotations

from typing import Any

import attrs

from iii_core import CallContext, Engine, Module, Trigger, structure
from iii_core.errors import InvocationError, RegistrationError


@attrs.define(frozen=True)
class GreeterConfig:
    greeting: str = "Hello"
    max_name_length: int = 100


class GreeterModule(Module):
    """Registers ``greeter::hello`` and a ``greeting`` trigger type.

    A ``greeting`` trigger (config ``{"name": ...}``) calls its function once with the greeting
    when it is registered: a minimal example of a module-provided trigger type.
    """

    name = "GreeterModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = structure(GreeterConfig, config, "modules::greeter::GreeterModule config")
        self.greetings = 0

    async def initialize(self) -> None:
        self.engine.register_function(
            "greeter::hello",
            self.hello,
            description="Greets {name}",
            request_format={"type": "object", "properties": {"name": {"type": "string"}}},
        )
        await self.engine.register_trigger_type("greeting", "Greets once on registration", self)

    async def hello(self, data: Any, ctx: CallContext) -> dict[str, str]:
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            raise InvocationError("'name' must be a non-empty string", code="invalid_input")
        if len(name) > self.config.max_name_length:
            raise InvocationError("'name' is too long", code="invalid_input")
        self.greetings += 1
        return {"message": f"{self.config.greeting}, {name}!"}

    def gauges(self) -> dict[str, int]:
        """Exported by the otel module as the counter ``iii_greeter_greetings_total``."""
        return {"greeter_greetings_total": self.greetings}

    async def register_trigger(self, trigger: Trigger) -> None:
        if not isinstance(trigger.config, dict) or not isinstance(trigger.config.get("name"), str):
            raise RegistrationError("a greeting trigger needs config {name: string}")
        message = await self.hello({"name": trigger.config["name"]}, CallContext("greeter::hello"))
        self.engine.call_void(trigger.function_id, message)

    async def unregister_trigger(self, trigger: Trigger) -> None:
        return None
