"""Entry point (group ``iii``): declares the modules this distribution provides."""

from __future__ import annotations

from iii_core import ModuleSpec, hookimpl
from iii_rest.http_functions import HttpFunctionsModule
from iii_rest.module import RestApiModule


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::rest_api::RestApiModule", "modules::api::RestApiModule"),
            factory=RestApiModule,
            default=True,
            description="HTTP API: 'http' trigger type served on port 3111",
        ),
        ModuleSpec(
            class_names=("modules::http_functions::HttpFunctionsModule",),
            factory=HttpFunctionsModule,
            default=False,
            description="Functions registered with 'invocation' are called over HTTP",
        ),
    ]
