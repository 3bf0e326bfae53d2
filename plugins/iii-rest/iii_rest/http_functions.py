"""``HttpFunctionsModule``: functions a worker registers with ``invocation {url, ...}`` are
served by the engine calling that URL over HTTP (httpx, pooled connections).

The module installs itself as the engine's ``external_function_registrar``: the core hands it
every ``registerfunction`` that carries ``invocation``, every ``unregisterfunction`` and every
worker disconnect.  A refused registration (bad URL, a security rule, a missing secret) is
logged as an error naming the function and the reason, and nothing is registered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
import uuid
from typing import Any, Final

import attrs
import httpx
import msgspec

from iii_core import Engine, InvocationError, Module, RegistrationError, Worker, structure
from iii_core.errors import InvocationTimeout
from iii_core.invocations import CallContext
from iii_core.protocol import RegisterFunction
from iii_rest.security import SecurityConfig, UrlRefused, check_url

log = logging.getLogger("iii.rest.http_functions")

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_TIMEOUT_MS: Final = 30_000
_encoder = msgspec.json.Encoder()


@attrs.define(frozen=True)
class HttpFunctionsConfig:
    security: SecurityConfig = attrs.field(factory=SecurityConfig)
    max_functions: int = 10_000
    """External functions registered at once (all workers); more are refused."""
    max_connections: int = 100
    """Pooled outbound connections (httpx limit)."""


class InvocationRefused(Exception):
    """A registration that cannot be accepted; the message says why."""


@attrs.frozen
class HttpTarget:
    """What to call for one function, secrets already read from the environment."""

    url: str
    method: str
    timeout_s: float
    headers: dict[str, str]
    auth_kind: str | None
    auth_header: str | None
    secret: str | None


def parse_invocation(invocation: dict[str, Any]) -> HttpTarget:
    """Validate ``invocation`` and read its secrets (named env vars) from the environment."""
    url = invocation.get("url")
    if not isinstance(url, str) or not url:
        raise InvocationRefused("invocation.url must be a non-empty string")
    method = invocation.get("method") or "POST"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvocationRefused(
            f"invocation.method must be one of {sorted(METHODS)}, got {method!r}"
        )
    timeout_ms = invocation.get("timeout_ms") or DEFAULT_TIMEOUT_MS
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
        raise InvocationRefused(
            f"invocation.timeout_ms must be a positive integer, got {timeout_ms!r}"
        )
    headers = invocation.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise InvocationRefused("invocation.headers must map strings to strings")
    auth = invocation.get("auth")
    kind = header = secret = None
    if auth is not None:
        if not isinstance(auth, dict):
            raise InvocationRefused(f"invocation.auth must be an object, got {auth!r}")
        kind = auth.get("type")
        env_key = {"hmac": "secret_key", "bearer": "token_key", "api_key": "value_key"}.get(
            str(kind)
        )
        if env_key is None:
            raise InvocationRefused(
                f"invocation.auth.type must be hmac, bearer or api_key, got {kind!r}"
            )
        env_name = auth.get(env_key)
        if not isinstance(env_name, str) or not env_name:
            raise InvocationRefused(f"invocation.auth.{env_key} must name an environment variable")
        secret = os.environ.get(env_name)
        if secret is None:
            raise InvocationRefused(
                f"environment variable {env_name!r} (invocation.auth.{env_key}) is not set in "
                "the engine's environment"
            )
        if kind == "api_key":
            header = auth.get("header")
            if not isinstance(header, str) or not header:
                raise InvocationRefused("invocation.auth.header is required for api_key auth")
    return HttpTarget(url, method.upper(), timeout_ms / 1000, dict(headers), kind, header, secret)


class HttpFunctionsModule(Module):
    """Registers and serves HTTP-invoked functions."""

    name = "HttpFunctionsModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.config = structure(
            HttpFunctionsConfig, config or {}, "modules::http_functions::HttpFunctionsModule config"
        )
        self._by_worker: dict[str, set[str]] = {}
        self._owner: dict[str, str] = {}
        self._client: httpx.AsyncClient | None = None

    def gauges(self) -> dict[str, int]:
        return {"http_functions": len(self._owner)}

    async def initialize(self) -> None:
        limits = httpx.Limits(
            max_connections=self.config.max_connections,
            max_keepalive_connections=self.config.max_connections,
        )
        self._client = httpx.AsyncClient(follow_redirects=False, limits=limits)
        self.engine.external_function_registrar = self

    async def shutdown(self) -> None:
        if self.engine.external_function_registrar is self:
            self.engine.external_function_registrar = None
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------------ registrar

    async def register(self, worker: Worker, msg: RegisterFunction) -> None:
        try:
            if len(self._owner) >= self.config.max_functions and msg.id not in self._owner:
                raise InvocationRefused(
                    f"too many HTTP-invoked functions (max_functions {self.config.max_functions})"
                )
            target = parse_invocation(msg.invocation or {})
            await check_url(target.url, self.config.security)
        except (InvocationRefused, UrlRefused) as exc:
            log.error("worker %s: HTTP-invoked function %s refused: %s", worker.id, msg.id, exc)
            return
        if self._owner.get(msg.id) == worker.id:
            self._remove(msg.id)
        if self.engine.workers.get(worker.id) is None:
            return  # disconnected while the URL was being checked

        async def handler(data: Any, ctx: CallContext) -> Any:
            return await self._invoke(msg.id, target, data)

        try:
            self.engine.register_function(
                msg.id,
                handler,
                description=msg.description,
                request_format=msg.request_format,
                response_format=msg.response_format,
                metadata=msg.metadata,
            )
        except RegistrationError as exc:
            log.error("worker %s: HTTP-invoked function %s refused: %s", worker.id, msg.id, exc)
            return
        self._owner[msg.id] = worker.id
        self._by_worker.setdefault(worker.id, set()).add(msg.id)
        worker.function_ids.add(msg.id)
        log.info("HTTP-invoked function %s → %s %s", msg.id, target.method, target.url)

    def unregister(self, worker: Worker, function_id: str) -> bool:
        if self._owner.get(function_id) != worker.id:
            return False
        self._remove(function_id)
        worker.function_ids.discard(function_id)
        return True

    def worker_gone(self, worker: Worker) -> None:
        for function_id in list(self._by_worker.get(worker.id, ())):
            self._remove(function_id)
            worker.function_ids.discard(function_id)

    def _remove(self, function_id: str) -> None:
        worker_id = self._owner.pop(function_id, None)
        if worker_id is not None:
            ids = self._by_worker.get(worker_id)
            if ids is not None:
                ids.discard(function_id)
                if not ids:
                    del self._by_worker[worker_id]
        self.engine.unregister_function(function_id)

    # ------------------------------------------------------------------ calls

    async def _invoke(self, function_id: str, target: HttpTarget, data: Any) -> Any:
        assert self._client is not None
        body = _encoder.encode(data)
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-iii-function-path": function_id,
            "x-iii-invocation-id": str(uuid.uuid4()),
            "x-iii-timestamp": timestamp,
            **target.headers,
        }
        if target.auth_kind == "hmac":
            assert target.secret is not None
            signed = f"{timestamp}:{base64.b64encode(body).decode()}".encode()
            digest = hmac.new(target.secret.encode(), signed, hashlib.sha256).hexdigest()
            headers["x-iii-signature"] = f"sha256={digest}"
        elif target.auth_kind == "bearer":
            headers["authorization"] = f"Bearer {target.secret}"
        elif target.auth_kind == "api_key":
            assert target.auth_header is not None and target.secret is not None
            headers[target.auth_header] = target.secret
        try:
            response = await self._client.request(
                target.method, target.url, content=body, headers=headers, timeout=target.timeout_s
            )
        except httpx.TimeoutException:
            raise InvocationTimeout(
                f"HTTP-invoked function {function_id} timed out after {target.timeout_s} s"
            ) from None
        except httpx.HTTPError as exc:
            raise InvocationError(
                f"HTTP-invoked function {function_id}: {exc}", code="http_error"
            ) from None
        if 200 <= response.status_code < 300:
            if not response.content:
                return None
            try:
                return msgspec.json.decode(response.content)
            except msgspec.DecodeError:
                raise InvocationError(
                    f"HTTP-invoked function {function_id} answered {response.status_code} with "
                    "a body that is not JSON",
                    code="invalid_response",
                ) from None
        try:
            error = msgspec.json.decode(response.content).get("error")
        except (msgspec.DecodeError, AttributeError):
            error = None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            raise InvocationError(str(error.get("message", "")), code=error["code"])
        raise InvocationError(f"HTTP {response.status_code}", code="http_error")
