"""A worker on the published PyPI ``iii-sdk`` (run by test_interop.py with its own venv).

It serves ``pub.greet`` and, once connected, calls ``sdk.double`` (served by iii_worker), then
reports what it got through ``sdk.report``, and what a failing call raised.
"""

import sys
import time

from iii import InitOptions, register_worker

url = sys.argv[1]
worker = register_worker(url, InitOptions(worker_name="published-py"))


def greet(data):
    return {"greeting": f"hello {data['name']}", "caller_saw": sorted(data)}


worker.register_function("pub.greet", greet)
deadline = time.time() + 30
while True:
    try:
        doubled = worker.trigger({"function_id": "sdk.double", "payload": {"n": 21}})
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
try:
    worker.trigger({"function_id": "sdk.fail", "payload": {}})
    error = None
except Exception as exc:
    error = {"type": type(exc).__name__, "code": getattr(exc, "code", None), "text": str(exc)}
worker.trigger({"function_id": "sdk.report", "payload": {"doubled": doubled, "error": error}})
while True:
    time.sleep(1)
