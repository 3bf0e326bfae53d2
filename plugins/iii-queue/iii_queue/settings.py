"""Configuration of the queue module, and the per-trigger ``queue_config`` of the reference.

A consumer's settings are layered: the module's ``defaults`` ← ``queues[<topic or queue name>]``
← the trigger's ``queue_config`` (camelCase keys, the reference's names).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import attrs

from iii_core import ConfigError

log = logging.getLogger("iii.queue")


@attrs.define(frozen=True)
class QueueSettings:
    """How the messages of one topic or named queue are handled.

    ``max_retries``: extra attempts after the first failure (then the dead-letter queue).
    ``backoff_ms`` / ``backoff_type``: delay before retry n is ``backoff_ms * 2**(n-1)``
    (``exponential``) or ``backoff_ms`` (``fixed``), capped by ``max_backoff_ms``.
    ``concurrency``: jobs one consumer (trigger) handles at once.  ``type``: ``standard`` or
    ``fifo`` (in order per message group, one job per group at a time).
    ``visibility_timeout_ms``: length of a lease; it is extended while the handler runs, so it
    only bounds how long a job of a crashed engine stays invisible.  ``delay_ms``: every message
    becomes visible this long after it was enqueued.  ``timeout_ms``: give up on a handler call
    after this long (counts as a failed attempt); none by default.
    """

    max_retries: int = 3
    backoff_ms: int = 1000
    backoff_type: Literal["exponential", "fixed"] = "exponential"
    max_backoff_ms: int = 300_000
    concurrency: int = 10
    type: Literal["standard", "fifo"] = "standard"
    visibility_timeout_ms: int = 30_000
    delay_ms: int = 0
    timeout_ms: int | None = None

    def check(self, where: str) -> QueueSettings:
        """Raise a :class:`ConfigError` naming ``where`` and the key for an out-of-range value."""
        problems = [
            f"{name} must be >= 0, got {getattr(self, name)}"
            for name in ("max_retries", "backoff_ms", "max_backoff_ms", "delay_ms")
            if getattr(self, name) < 0
        ]
        if self.concurrency < 1:
            problems.append(f"concurrency must be >= 1, got {self.concurrency}")
        if self.visibility_timeout_ms < 100:
            problems.append(
                f"visibility_timeout_ms must be >= 100, got {self.visibility_timeout_ms}"
            )
        if problems:
            raise ConfigError(f"{where}: {'; '.join(problems)}")
        return self

    def backoff(self, attempts: int) -> int:
        """Delay before the retry that follows failed attempt number ``attempts`` (1-based)."""
        if self.backoff_type == "fixed":
            delay = self.backoff_ms
        else:
            delay = self.backoff_ms * 2 ** min(attempts - 1, 32)
        return min(delay, self.max_backoff_ms)


@attrs.define(frozen=True)
class QueueModuleConfig:
    """``adapter``: ``{class, config}`` (default: the SQLite adapter at ``./data/queue.db``).
    ``defaults``: settings of every topic and queue.  ``queues``: settings per topic or named
    queue (``action: enqueue``), over the defaults.  ``poll_interval_ms``: how often an idle
    consumer looks for work that another engine pushed or whose delay passed.
    ``max_named_queues``: bound on distinct queue names an ``action: enqueue`` may create.
    """

    adapter: dict[str, Any] | None = None
    defaults: dict[str, Any] = attrs.field(factory=dict)
    queues: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    poll_interval_ms: int = 100
    max_named_queues: int = 1000


_CAMEL: dict[str, tuple[str, type, float]] = {
    # queue_config key -> (setting, JSON type, factor to the setting's unit)
    "maxRetries": ("max_retries", int, 1),
    "concurrency": ("concurrency", int, 1),
    "visibilityTimeout": ("visibility_timeout_ms", int, 1000),
    "delaySeconds": ("delay_ms", int, 1000),
    "backoffDelayMs": ("backoff_ms", int, 1),
    "timeoutMs": ("timeout_ms", int, 1),
    "backoffType": ("backoff_type", str, 1),
    "type": ("type", str, 1),
}


def apply_queue_config(base: QueueSettings, queue_config: Any, where: str) -> QueueSettings:
    """Layer a trigger's ``queue_config`` over ``base``.

    As in the reference, a numeric key is read only when it is a non-negative integer and a
    string key only when it is a string; other values are ignored (with a warning, which the
    reference does not give).  ``type`` other than ``fifo`` means standard; ``backoffType`` other
    than ``fixed`` means exponential.  ``visibilityTimeout`` and ``delaySeconds`` are seconds.
    """
    if queue_config is None:
        return base
    if not isinstance(queue_config, dict):
        log.warning("%s: queue_config is not an object, ignored: %r", where, queue_config)
        return base
    changes: dict[str, Any] = {}
    for key, value in queue_config.items():
        spec = _CAMEL.get(key)
        if spec is None:
            log.warning("%s: unknown queue_config key %r ignored", where, key)
            continue
        name, kind, factor = spec
        if kind is int:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                log.warning(
                    "%s: queue_config.%s=%r ignored (not an integer >= 0)", where, key, value
                )
                continue
            changes[name] = int(value * factor)
        elif not isinstance(value, str):
            log.warning("%s: queue_config.%s=%r ignored (not a string)", where, key, value)
        elif name == "type":
            changes[name] = "fifo" if value == "fifo" else "standard"
        else:
            changes[name] = "fixed" if value == "fixed" else "exponential"
    if changes.get("concurrency") == 0:
        del changes["concurrency"]
    if "visibility_timeout_ms" in changes and changes["visibility_timeout_ms"] < 100:
        del changes["visibility_timeout_ms"]
    return attrs.evolve(base, **changes)
