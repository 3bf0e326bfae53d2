"""A worker written with the published Python ``iii-sdk``: state calls and a state trigger.

Prints one JSON line with every result, then exits.  Usage: ``python state_client.py WS_URL``.
"""

import json
import sys
import threading

from iii import register_worker

iii = register_worker(sys.argv[1])
events = []
got_event = threading.Event()


def on_change(data):
    events.append(data)
    got_event.set()
    return None


iii.register_function("py::on_change", on_change)
iii.register_trigger(
    {"type": "state", "function_id": "py::on_change", "config": {"scope": "py", "key": "watched"}}
)


def call(function_id, payload):
    return iii.trigger({"function_id": function_id, "payload": payload})


out = {}
out["set"] = call("state::set", {"scope": "py", "key": "a", "value": {"n": 1}})
out["get"] = call("state::get", {"scope": "py", "key": "a"})
out["update"] = call(
    "state::update",
    {
        "scope": "py",
        "key": "a",
        "ops": [
            {"type": "increment", "path": "n", "by": 2},
            {"type": "set", "path": "tag", "value": "x"},
            {"type": "merge", "path": None, "value": {"m": 1}},
            {"type": "decrement", "path": "d", "by": 1},
            {"type": "remove", "path": "m"},
        ],
    },
)
out["list"] = call("state::list", {"scope": "py"})
out["groups"] = call("state::list_groups", {})
out["delete"] = call("state::delete", {"scope": "py", "key": "a"})
out["get_missing"] = call("state::get", {"scope": "py", "key": "a"})
out["kv_set"] = call("kv_server::set", {"index": "pyi", "key": "k", "value": 1})
out["kv_get"] = call("kv_server::get", {"index": "pyi", "key": "k"})
# The trigger registration is asynchronous: write until the handler sees an event.
for attempt in range(50):
    call("state::set", {"scope": "py", "key": "watched", "value": attempt})
    if got_event.wait(0.2):
        break
out["event"] = {k: v for k, v in events[0].items() if k != "_caller_worker_id"} if events else None
print(json.dumps(out), flush=True)
iii.shutdown()
