"""The trigger condition convention shared by the http, queue, cron, state and stream modules.

A trigger config may name a condition function: ``_condition_path`` (http, queue, cron) or
``condition_function_id`` (state, stream).  The condition is called with the same payload as the
handler; exactly ``false`` skips the handler, any other result runs it, an error is re-raised so
that each module applies its own rule (HTTP answers 500, cron skips the tick, ...).
"""

from __future__ import annotations

from typing import Any

from iii_core.engine import Engine

CONDITION_KEYS = ("_condition_path", "condition_function_id")


def condition_function(config: Any) -> str | None:
    if isinstance(config, dict):
        for key in CONDITION_KEYS:
            value = config.get(key)
            if isinstance(value, str) and value:
                return value
    return None


async def condition_allows(
    engine: Engine, config: Any, payload: Any, *, traceparent: str | None = None
) -> bool:
    """True when there is no condition or it did not return ``false``; errors propagate."""
    function_id = condition_function(config)
    if function_id is None:
        return True
    result = await engine.call(function_id, payload, traceparent=traceparent)
    return result is not False
