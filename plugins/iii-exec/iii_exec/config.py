"""The ``config`` mapping of ``modules::shell::ExecModule``."""

from __future__ import annotations

from typing import Any

import attrs

from iii_core import ConfigError, structure
from iii_exec.globs import Glob


@attrs.define(frozen=True)
class ExecConfig:
    """Keys of the module's ``config``.

    ``exec``: shell commands run in order through ``sh -c``; every one but the last must exit 0,
    the last is kept running.  ``watch``: glob patterns (relative to ``cwd``); a matching change
    restarts the pipeline.  ``restart_delay_ms`` is the first delay before a crashed long-running
    command is restarted; it doubles on each consecutive crash up to ``max_restart_delay_ms`` and
    resets once the command ran for ``stable_after_ms``.  ``stop_grace_ms`` is how long a process
    group gets between SIGTERM and SIGKILL.  ``name`` prefixes the output lines instead of the
    command text.  ``max_line_bytes`` bounds one output line (longer lines are split).
    """

    exec: list[str]
    watch: list[str] = attrs.field(factory=list)
    cwd: str | None = None
    env: dict[str, str] = attrs.field(factory=dict)
    name: str | None = None
    debounce_ms: int = 200
    restart_delay_ms: int = 500
    max_restart_delay_ms: int = 30_000
    stable_after_ms: int = 10_000
    stop_grace_ms: int = 3_000
    max_line_bytes: int = 64 * 1024


def parse_config(data: dict[str, Any] | None, where: str) -> tuple[ExecConfig, list[Glob]]:
    """Validate the mapping; errors name ``where`` and the key."""
    config = structure(ExecConfig, data, where)
    if not config.exec:
        raise ConfigError(f"{where}: key 'exec' needs at least one command")
    for index, command in enumerate(config.exec):
        if not command.strip():
            raise ConfigError(f"{where}: key 'exec[{index}]' is an empty command")
    for key in (
        "debounce_ms",
        "restart_delay_ms",
        "max_restart_delay_ms",
        "stable_after_ms",
        "stop_grace_ms",
    ):
        if getattr(config, key) < 0:
            raise ConfigError(f"{where}: key {key!r} must be >= 0 (got {getattr(config, key)})")
    if config.max_line_bytes < 80:
        raise ConfigError(
            f"{where}: key 'max_line_bytes' must be >= 80 (got {config.max_line_bytes})"
        )
    globs = []
    for index, pattern in enumerate(config.watch):
        try:
            globs.append(Glob(pattern))
        except ValueError as exc:
            raise ConfigError(f"{where}: key 'watch[{index}]': {exc}") from None
    return config, globs
