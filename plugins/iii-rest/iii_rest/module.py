"""``RestApiModule``: the ``http`` trigger type and the HTTP server on port 3111."""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from iii_core import Engine, Module, Trigger, structure
from iii_rest.config import CorsConfig, RestApiConfig
from iii_rest.handler import HttpHandler, tracer_installed
from iii_rest.routes import Route, RouteTable, parse_trigger
from iii_rest.server import HttpServer, create_server

log = logging.getLogger("iii.rest")

TRIGGER_TYPE = "http"


def cors_middleware(cors: CorsConfig | None) -> Middleware:
    """The reference's CORS rules: no block is fully permissive; an empty origin list or one
    containing ``*`` allows any origin; an empty method list allows any method; request headers
    are always allowed."""
    if cors is None:
        origins, methods = ["*"], ["*"]
    else:
        origins = list(cors.allowed_origins)
        if not origins or "*" in origins:
            if len(origins) > 1:
                log.warning(
                    "cors.allowed_origins mixes '*' with explicit origins %s: any origin is "
                    "allowed",
                    [o for o in origins if o != "*"],
                )
            origins = ["*"]
        methods = [m.upper() for m in cors.allowed_methods] or ["*"]
    return Middleware(
        CORSMiddleware, allow_origins=origins, allow_methods=methods, allow_headers=["*"]
    )


class RestApiModule(Module):
    """Serves every ``http`` trigger as a route; see the package README for the config keys."""

    name = "RestApiModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = structure(
            RestApiConfig, config or {}, "modules::rest_api::RestApiModule config"
        )
        self.routes = RouteTable()
        self.handler = HttpHandler(engine, self.config, self.routes)
        self.app = Starlette(
            routes=[Mount("/", app=self.handler)],
            middleware=[cors_middleware(self.config.cors)],
        )
        self.asgi = self.handler.front_door(self.app)
        """What the HTTP server runs: trigger routes skip the middleware when they can."""
        self.port: int | None = None
        self._server: HttpServer | None = None

    async def initialize(self) -> None:
        await self.engine.register_trigger_type(TRIGGER_TYPE, "HTTP API route", self)
        self._server = create_server(
            self.config.server,
            self.asgi,
            self.config.host,
            self.config.port,
            self.config.header_timeout / 1000,
        )
        self.port = self._server.port
        await self._server.start()
        log.info(
            "HTTP API (%s) listening on http://%s:%d",
            self.config.server,
            self.config.host,
            self.port,
        )

    async def run(self) -> None:
        # Every module has initialised: the otel module, when loaded, installed its tracer.
        self.handler.tracing = tracer_installed()

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    # ------------------------------------------------------------------ trigger registrator

    async def register_trigger(self, trigger: Trigger) -> None:
        parsed = parse_trigger(trigger)
        if parsed is None:
            log.warning(
                "http trigger %s for %s: http_method %r is not one of GET, POST, PUT, DELETE, "
                "PATCH, HEAD, OPTIONS; no route was added",
                trigger.id,
                trigger.function_id,
                trigger.config.get("http_method"),
            )
            return
        method, api_path = parsed
        self.routes.add(Route(trigger, method, api_path))
        log.info("[REGISTERED] HTTP route %s %s → %s", method, api_path, trigger.function_id)

    async def unregister_trigger(self, trigger: Trigger) -> None:
        route = self.routes.remove(trigger.id)
        if route is not None:
            log.info(
                "[UNREGISTERED] HTTP route %s %s → %s",
                route.method,
                route.api_path_as_given,
                route.function_id,
            )

    def gauges(self) -> dict[str, int]:
        """Sizes of this module's bounded state (routes are bounded by the trigger registry)."""
        return {
            "http_routes": len(self.routes),
            "http_requests_in_flight": self.handler.inflight,
            "http_requests_total": self.handler.requests_total,
            "http_requests_rejected_total": self.handler.rejected_total,
        }
