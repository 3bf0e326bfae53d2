"""Configuration: the ``config.yaml`` format of the reference, typed with attrs and cattrs.

``${VAR}`` and ``${VAR:default}`` are replaced in the raw text before YAML parsing (as the
reference does).  Every error names the file, the key and the bad value.  Modules validate their
own ``config`` mapping with :func:`structure`, which rejects unknown keys the same way.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import attrs
import cattrs
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the env

from iii_core.errors import ConfigError

T = TypeVar("T")

DEFAULT_PORT: Final = 49134
MIB: Final = 1024 * 1024

_ENV_PATTERN: Final = re.compile(r"\$\{([^}:]+)(?::([^}]*))?\}")

_converter = cattrs.Converter(forbid_extra_keys=True)


class _InvalidValue(ValueError):
    """Raised by field validators; its message names the key and the value."""


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise _InvalidValue(f"key {attribute.name!r}: must be a positive integer (got {value!r})")


def _not_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise _InvalidValue(f"key {attribute.name!r}: must be zero or more (got {value!r})")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


@attrs.define(frozen=True)
class ModuleEntry:
    """One ``modules:`` item: a class string and its module-specific config."""

    class_name: str
    config: dict[str, Any] | None = None
    where: str = ""


@attrs.define(frozen=True)
class AuthConfig:
    """Worker authentication (off unless configured).

    ``tokens_env``: names of environment variables that each hold an accepted bearer token.
    ``auth_function_id``: a function called with ``{headers, query, ip_address, path}``; it returns
    ``false`` / ``{"allowed": false}`` to refuse, or ``{"allowed": true, "allowed_functions": [...],
    "allowed_registrations": [...]}`` to restrict what the worker may call and register.
    """

    tokens_env: list[str] = attrs.field(factory=list)
    auth_function_id: str | None = None
    auth_timeout_ms: int = attrs.field(default=5000, validator=_positive)


@attrs.define(frozen=True)
class EngineConfig:
    """Top-level keys of ``config.yaml`` (all optional)."""

    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    invocation_timeout_ms: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    shutdown_grace_ms: int = attrs.field(default=10_000, validator=_not_negative)
    max_message_bytes: int = attrs.field(default=64 * MIB, validator=_positive)
    max_connections: int = attrs.field(default=10_000, validator=_positive)
    #: listen(2) backlog of the worker socket (the kernel caps it at net.core.somaxconn); aiohttp's
    #: default of 128 overflows when hundreds of workers connect at once, costing each dropped
    #: SYN a 1 s retransmit.
    listen_backlog: int = attrs.field(default=1024, validator=_positive)
    max_pending_per_worker: int = attrs.field(default=10_000, validator=_positive)
    max_registrations_per_worker: int = attrs.field(default=10_000, validator=_positive)
    send_queue_size: int = attrs.field(default=4096, validator=_positive)
    max_channels: int = attrs.field(default=10_000, validator=_positive)
    compression: Literal["off", "deflate"] = "off"
    auth: AuthConfig | None = None
    modules: list[ModuleEntry] | None = None
    source: str = "<default configuration>"


def interpolate(text: str, source: str) -> str:
    """Replace ``${VAR}`` / ``${VAR:default}``; an unset variable without default is an error."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        line = text.count("\n", 0, match.start()) + 1
        raise ConfigError(
            f"{source}:{line}: environment variable {name!r} is not set and "
            f"'{match.group(0)}' gives no default (write ${{{name}:default}} to give one)"
        )

    return _ENV_PATTERN.sub(replace, text)


def structure(cls: type[T], data: Any, where: str) -> T:
    """Build ``cls`` (an attrs class) from ``data``; errors name ``where`` and the bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    try:
        return _converter.structure(data, cls)
    except Exception as exc:
        details = _describe(exc, data)
        raise ConfigError(f"{where}: {details}") from None


def _describe(exc: BaseException, data: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        keys = ", ".join(sorted(exc.extra_fields))
        allowed = ", ".join(
            sorted(a.name for a in attrs.fields(exc.cl) if a.name != "source")  # type: ignore[arg-type]
        )
        return f"unknown key(s) {keys} (allowed: {allowed})"
    if isinstance(exc, BaseExceptionGroup):
        invalid = [str(leaf) for leaf in _leaves(exc) if isinstance(leaf, _InvalidValue)]
        if invalid:
            return "; ".join(invalid)
        messages = []
        for line in cattrs.transform_error(exc):
            if "extra fields found" not in line:
                messages.append(_with_value(line, data))
        for sub in exc.exceptions:
            if isinstance(sub, cattrs.ForbiddenExtraKeysError):
                messages.append(_describe(sub, data))
        return "; ".join(dict.fromkeys(messages)) or str(exc)
    return str(exc)


def _with_value(line: str, data: Any) -> str:
    """Add the offending value to a cattrs message like ``invalid value ... @ $.port``."""
    message, _, path = line.partition(" @ ")
    key = path.removeprefix("$.").removeprefix("$")
    value: Any = data
    for part in re.findall(r"[^.\[\]]+", key):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return f"key {key!r}: {message}"
    return f"key {key!r}: {message} (got {value!r})"


def parse_config(text: str, source: str) -> EngineConfig:
    """Parse the text of a config file (after interpolation) into an :class:`EngineConfig`."""
    text = interpolate(text, source)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(doc).__name__}")
    doc = dict(doc)
    raw_modules = doc.pop("modules", None)
    modules: list[ModuleEntry] | None = None
    if raw_modules is not None:
        if not isinstance(raw_modules, list):
            raise ConfigError(f"{source}: key 'modules' must be a list, got {raw_modules!r}")
        modules = []
        for index, item in enumerate(raw_modules):
            where = f"{source}: modules[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get("class"), str):
                raise ConfigError(f"{where}: each module needs a 'class' string, got {item!r}")
            extra = set(item) - {"class", "config"}
            if extra:
                raise ConfigError(
                    f"{where}: unknown key(s) {', '.join(sorted(extra))} (allowed: class, config)"
                )
            config = item.get("config")
            if config is not None and not isinstance(config, dict):
                raise ConfigError(f"{where}.config: expected a mapping, got {config!r}")
            modules.append(ModuleEntry(item["class"], config, f"{where}.config"))
    doc.pop("source", None)
    if doc.get("port") == 0:
        doc["port"] = DEFAULT_PORT
    config = structure(EngineConfig, doc, source)
    return attrs.evolve(config, modules=modules, source=source)


def load_config(path: str | os.PathLike[str]) -> EngineConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: '{file}'") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{file}': {exc}") from None
    return parse_config(text, str(file))
