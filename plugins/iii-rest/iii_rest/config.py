"""Configuration of the HTTP API module (``modules::rest_api::RestApiModule``).

Keys follow the reference engine (``port``, ``host``, ``default_timeout``,
``concurrency_request_limit``, ``cors``); ``server``, ``max_body_bytes``,
``stream_warning_ms`` and ``header_timeout`` are this project's additions.  Unknown keys
are rejected by :func:`iii_core.structure`.
"""

from __future__ import annotations

from typing import Literal

import attrs

MIB = 1024 * 1024


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be between 0 and 65535, got {value!r}")


@attrs.define(frozen=True)
class CorsConfig:
    """``allowed_origins``: empty or containing ``*`` allows any origin.
    ``allowed_methods``: empty allows any method.  Request headers are always allowed."""

    allowed_origins: list[str] = attrs.field(factory=list)
    allowed_methods: list[str] = attrs.field(factory=list)


@attrs.define(frozen=True)
class RestApiConfig:
    port: int = attrs.field(default=3111, validator=_port)
    host: str = "127.0.0.1"
    default_timeout: int = attrs.field(default=30_000, validator=_positive)
    """Milliseconds to produce the response head; past it the answer is 504."""
    concurrency_request_limit: int = attrs.field(default=1024, validator=_positive)
    """Requests in flight at once; more are answered 503 at once instead of queuing."""
    cors: CorsConfig | None = None
    server: Literal["uvicorn", "hypercorn"] = "uvicorn"
    max_body_bytes: int = attrs.field(default=16 * MIB, validator=_positive)
    """Largest request body accepted (JSON or streamed); a larger one gets 413."""
    stream_warning_ms: int = attrs.field(default=1000, validator=_positive)
    """After a null return, warn when the response channel is still unopened this long."""
    header_timeout: int = attrs.field(default=5000, validator=_positive)
    """Milliseconds a client may take to send a request head (slowloris guard); then the
    connection is closed.  On Hypercorn this is its keep-alive timeout, which covers both."""
