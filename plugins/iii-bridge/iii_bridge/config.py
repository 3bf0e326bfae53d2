"""The bridge client's configuration.

The reference accepts any keys here and ignores the unknown ones; like every module of this
project, an unknown key (or a value of the wrong type) fails start-up with an error naming it.
"""

from __future__ import annotations

import os
from typing import Any, Final, TypeVar

import attrs

from iii_core import structure
from iii_core.errors import ConfigError

WHERE: Final = "modules::bridge_client::BridgeClientModule config"
URL_ENV: Final = "III_BRIDGE_URL"
#: The reference's default is ws://0.0.0.0:49134; a client connects to loopback instead.
DEFAULT_URL: Final = "ws://127.0.0.1:49134"
DEFAULT_SERVICE_NAME: Final = "iii-bridge"


@attrs.define(frozen=True)
class ExposeEntry:
    """Publish ``local_function`` of this engine on the remote engine as ``remote_function``
    (default: the same name)."""

    local_function: str
    remote_function: str | None = None

    @property
    def remote_id(self) -> str:
        return self.remote_function or self.local_function


@attrs.define(frozen=True)
class ForwardEntry:
    """Register ``local_function`` here; calling it calls ``remote_function`` on the remote
    engine with the same input, within ``timeout_ms`` (default: the module's ``timeout_ms``)."""

    local_function: str
    remote_function: str
    timeout_ms: int | None = None


@attrs.define(frozen=True)
class BridgeConfig:
    """``url``: the remote engine (else ``$III_BRIDGE_URL``, else ``ws://127.0.0.1:49134``);
    ``service_name``: this engine's worker name on the remote engine; ``service_id``: accepted
    for compatibility (informational); ``expose`` / ``forward``: see the entry classes;
    ``timeout_ms``: default deadline of remote calls and of exposed local calls;
    ``reconnect_initial_delay_ms`` / ``reconnect_max_delay_ms``: backoff between connection
    attempts (doubling, ±30 % jitter); ``token_env``: the environment variable holding the bearer
    token the remote engine's worker auth expects."""

    url: str | None = None
    token_env: str | None = None
    service_id: str | None = None
    service_name: str = DEFAULT_SERVICE_NAME
    expose: list[ExposeEntry] = attrs.field(factory=list)
    forward: list[ForwardEntry] = attrs.field(factory=list)
    timeout_ms: int = 30_000
    reconnect_initial_delay_ms: int = 500
    reconnect_max_delay_ms: int = 5_000

    @property
    def remote_url(self) -> str:
        return self.url or os.environ.get(URL_ENV) or DEFAULT_URL

    def auth_headers(self) -> dict[str, str] | None:
        """``Authorization: Bearer <token>`` from ``$token_env``; None without ``token_env``."""
        if self.token_env is None:
            return None
        return {"Authorization": f"Bearer {os.environ[self.token_env]}"}


#: The expected JSON type of every key (cattrs alone would turn ``5`` into ``"5"`` and
#: ``true`` into ``1``), checked before structuring so that errors name the key.
_STR: Final = (str,)
_OPTIONAL_STR: Final = (str, type(None))
_POSITIVE: Final = (int,)
_OPTIONAL_POSITIVE: Final = (int, type(None))
_TOP_KEYS: Final[dict[str, tuple[type, ...]]] = {
    "url": _OPTIONAL_STR,
    "service_id": _OPTIONAL_STR,
    "service_name": _STR,
    "token_env": _OPTIONAL_STR,
    "timeout_ms": _POSITIVE,
    "reconnect_initial_delay_ms": _POSITIVE,
    "reconnect_max_delay_ms": _POSITIVE,
}
_EXPOSE_KEYS: Final[dict[str, tuple[type, ...]]] = {
    "local_function": _STR,
    "remote_function": _OPTIONAL_STR,
}
_FORWARD_KEYS: Final[dict[str, tuple[type, ...]]] = {
    "local_function": _STR,
    "remote_function": _STR,
    "timeout_ms": _OPTIONAL_POSITIVE,
}


def bridge_config(raw: dict[str, Any] | None) -> BridgeConfig:
    """Validate the module's ``config`` mapping (no I/O); errors name the key and the value."""
    raw = _mapping(raw, WHERE)
    top = {key: value for key, value in raw.items() if key not in ("expose", "forward")}
    _check(top, _TOP_KEYS, WHERE)
    config = structure(BridgeConfig, top, WHERE)
    expose = [
        _entry(ExposeEntry, item, _EXPOSE_KEYS, f"{WHERE}: expose[{i}]")
        for i, item in enumerate(_list(raw, "expose"))
    ]
    forward = [
        _entry(ForwardEntry, item, _FORWARD_KEYS, f"{WHERE}: forward[{i}]")
        for i, item in enumerate(_list(raw, "forward"))
    ]
    config = attrs.evolve(config, expose=expose, forward=forward)
    url = config.remote_url
    if not url.startswith(("ws://", "wss://")):
        source = "key 'url'" if config.url else f"${URL_ENV}"
        raise ConfigError(f"{WHERE}: {source} must start with ws:// or wss://, got {url!r}")
    if config.token_env is not None and not os.environ.get(config.token_env):
        raise ConfigError(
            f"{WHERE}: key 'token_env' names environment variable {config.token_env!r}, "
            "which is not set or empty"
        )
    if config.reconnect_max_delay_ms < config.reconnect_initial_delay_ms:
        raise ConfigError(
            f"{WHERE}: key 'reconnect_max_delay_ms' ({config.reconnect_max_delay_ms}) must be at "
            f"least 'reconnect_initial_delay_ms' ({config.reconnect_initial_delay_ms})"
        )
    _unique("forward[].local_function", [f.local_function for f in forward])
    _unique("expose[].remote_function", [e.remote_id for e in expose])
    for entry in forward:
        if entry.local_function in ("bridge.invoke", "bridge.invoke_async"):
            raise ConfigError(
                f"{WHERE}: key 'forward[].local_function': {entry.local_function!r} is a "
                "function of the bridge itself"
            )
    return config


E = TypeVar("E", ExposeEntry, ForwardEntry)


def _entry(cls: type[E], item: Any, keys: dict[str, tuple[type, ...]], where: str) -> E:
    item = _mapping(item, where)
    _check(item, keys, where)
    return structure(cls, item, where)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{WHERE}: key {key!r} must be a list, got {value!r}")
    return value


def _check(raw: dict[str, Any], keys: dict[str, tuple[type, ...]], where: str) -> None:
    """Type-check the known keys (unknown ones are left to :func:`structure`, which names them)."""
    for key, types in keys.items():
        if key not in raw:
            continue
        value = raw[key]
        if value is None and type(None) in types:
            continue
        if int in types:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}: key {key!r} must be a positive integer, got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: key {key!r} must be a non-empty string, got {value!r}")


def _unique(key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{WHERE}: key {key!r}: {name!r} appears more than once")
        seen.add(name)
