"""The stream module's configuration (unknown keys are rejected, as in the reference)."""

from __future__ import annotations

from typing import Any

import attrs

from iii_core import ConfigError


def _positive(_inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.define(frozen=True)
class StreamConfig:
    """See README.md for each key.  Every bound has a default that suits one engine process."""

    port: int = 3112
    host: str = "127.0.0.1"
    auth_function: str | None = None
    adapter: dict[str, Any] | None = None
    max_connections: int = attrs.field(default=10_000, validator=_positive)
    max_subscriptions_per_connection: int = attrs.field(default=1_000, validator=_positive)
    send_buffer_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    max_message_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    max_pending_trigger_events: int = attrs.field(default=10_000, validator=_positive)
    serve_client_js: bool = True
