"""The life cycle every engine module follows, built-in or third-party.

create (``__init__``: validate config, no I/O) → :meth:`Module.initialize` (register trigger types
and functions, open listeners) → :meth:`Module.run` (long-running work, inside the engine's task
group) → :meth:`Module.shutdown` (drain and close, within the engine's shutdown deadline).
Modules are initialised in config order and shut down in reverse order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from iii_core.engine import Engine


class Module:
    """Base class of engine modules.

    Subclasses set :attr:`name`, validate ``config`` in ``__init__`` (raise
    :class:`~iii_core.errors.ConfigError` naming the bad key; :func:`iii_core.config.structure`
    does it for attrs classes) and override the coroutines they need.
    """

    name: ClassVar[str] = "module"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        self.engine = engine
        self.raw_config: dict[str, Any] = dict(config or {})

    async def initialize(self) -> None:
        """Register trigger types and functions; bind listeners.  Raise to abort start-up."""

    async def run(self) -> None:
        """Long-running work; cancelled at shutdown.  Return at once if there is none."""

    async def shutdown(self) -> None:
        """Release resources.  Called in reverse start order, within the shutdown deadline."""

    def gauges(self) -> dict[str, int]:
        """Sizes of the module's bounded in-memory state, and its counters.

        Names are prefixed with the module's area (``queue_inflight``, ``cron_jobs``); a name
        ending in ``_total`` is a counter.  The otel module exports each as ``iii_<name>`` on
        its Prometheus endpoint; leak tests compare them before and after a fault.
        """
        return {}
