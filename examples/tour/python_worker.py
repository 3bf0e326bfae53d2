"""The tour's Python worker (published PyPI ``iii-sdk``).

It registers ``math.add``, which the Node worker calls, and calls the Node worker's
``greet.hello`` itself: once at start-up and then on every tick of a cron trigger.
The exec module restarts this process when the file changes; edit ``add`` and call it again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from typing import Any

from iii import InitOptions, register_worker

iii = register_worker(
    os.environ.get("III_URL", "ws://127.0.0.1:49134"), InitOptions(worker_name="tour-python")
)


def add(data: dict[str, Any]) -> dict[str, Any]:
    return {"sum": data["a"] + data["b"]}


def greet_from_python(data: Any) -> Any:
    """Call the Node worker's function through the engine."""
    reply = iii.trigger({"function_id": "greet.hello", "payload": {"name": "Python"}})
    print(f"greet.hello answered: {reply['message']}", flush=True)
    return reply


iii.register_function("math.add", add, description="Add a and b")
iii.register_function("tour.tick", greet_from_python, description="Greet through Node")
# Every 30 seconds (the cron module's expressions have a seconds field first).  SDK 0.25 marks
# register_trigger deprecated in favour of observe(), but says to keep using it for cron.
logging.getLogger("iii.iii").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    iii.register_trigger(
        {"type": "cron", "function_id": "tour.tick", "config": {"expression": "*/30 * * * * *"}}
    )

# Say hello once the Node worker is up (it may start after us).
for _ in range(60):
    try:
        greet_from_python(None)
        break
    except Exception:
        time.sleep(0.5)

threading.Event().wait()  # serve until the engine stops us (SIGTERM)
