"""Optional worker authentication, checked on the WebSocket upgrade.

Off unless ``auth`` is set in the engine config.  A worker is accepted when its
``Authorization: Bearer <token>`` header matches one of the tokens read from the environment
variables listed in ``auth.tokens_env``, or when the function ``auth.auth_function_id`` accepts
it.  That function gets ``{headers, query, ip_address, path}`` and returns ``false``,
``{"allowed": false}``, or ``{"allowed": true, "allowed_functions": [...],
"allowed_registrations": [...]}`` (either list may be left out: no restriction).  A refused
upgrade is answered 401.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import TYPE_CHECKING, Any

import attrs

from iii_core.errors import ConfigError, InvocationError

if TYPE_CHECKING:
    from aiohttp import web

    from iii_core.engine import Engine

log = logging.getLogger("iii.auth")


class AuthRefused(Exception):
    """The upgrade is refused; the message says why (sent in the 401 body)."""


@attrs.frozen
class Grant:
    """What an accepted worker may do (``None``: anything)."""

    allowed_functions: frozenset[str] | None = None
    allowed_registrations: frozenset[str] | None = None


class Authenticator:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config.auth
        self.tokens: list[bytes] = []
        if self.config is not None:
            for name in self.config.tokens_env:
                value = os.environ.get(name)
                if not value:
                    raise ConfigError(
                        f"{engine.config.source}: auth.tokens_env names environment variable "
                        f"{name!r}, which is not set"
                    )
                self.tokens.append(value.encode())

    @property
    def enabled(self) -> bool:
        return self.config is not None

    async def check(self, request: web.Request, ip: str) -> Grant | None:
        if self.config is None:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if token and scheme.lower() == "bearer":
            presented = token.strip().encode()
            if any(hmac.compare_digest(presented, t) for t in self.tokens):
                return Grant()
        function_id = self.config.auth_function_id
        if function_id is None:
            raise AuthRefused("missing or invalid bearer token")
        payload = {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "query": dict(request.query),
            "ip_address": ip,
            "path": request.path,
        }
        try:
            result: Any = await self.engine.call(
                function_id, payload, timeout=self.config.auth_timeout_ms / 1000
            )
        except InvocationError as exc:
            raise AuthRefused(f"auth function {function_id} failed: {exc.code}") from None
        if result is False or result is None:
            raise AuthRefused("rejected by the auth function")
        if isinstance(result, dict):
            if result.get("allowed") is False or result.get("authorized") is False:
                raise AuthRefused(str(result.get("reason") or "rejected by the auth function"))
            return Grant(
                _names(result.get("allowed_functions")), _names(result.get("allowed_registrations"))
            )
        return Grant()


def _names(value: Any) -> frozenset[str] | None:
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    return None
