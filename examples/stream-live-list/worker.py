"""Example worker for the live-list page: serves the page and adds items to a stream.

Run an engine with the stream module (``iii`` alone loads it), then::

    pip install iii-sdk            # the published worker SDK
    python examples/stream-live-list/worker.py --interval 3
    # open the URL it prints; every 3 s an item appears, live

It registers ``live_list::add`` (``{"text": ...}``): call it from any worker to add an item.  Both
paths write with ``stream::set``, and the stream module pushes the change to every open page.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import threading
import time
import uuid
from typing import Any

from iii import InitOptions, register_worker

HERE = os.path.dirname(os.path.abspath(__file__))


def serve_page(port: int) -> http.server.ThreadingHTTPServer:
    """Serve this folder (index.html) from a background thread."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=HERE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=os.environ.get("III_URL", "ws://127.0.0.1:49134"))
    parser.add_argument("--stream-url", default="ws://127.0.0.1:3112/")
    parser.add_argument("--http-port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--name", default="live-list", help="stream name")
    parser.add_argument("--group", default="default", help="group id")
    parser.add_argument("--interval", type=float, default=0, help="add an item every N s (0: off)")
    args = parser.parse_args()

    iii = register_worker(args.engine, InitOptions(worker_name="stream-live-list"))

    def add(text: str) -> Any:
        item_id = uuid.uuid4().hex[:12]
        value = {"id": item_id, "text": text, "at": int(time.time() * 1000)}
        payload = {"stream_name": args.name, "group_id": args.group, "item_id": item_id}
        return iii.trigger({"function_id": "stream::set", "payload": {**payload, "data": value}})

    def add_handler(data: Any) -> Any:
        return add(str((data or {}).get("text", "")))["new_value"]

    iii.register_function("live_list::add", add_handler, description="Add an item to the list")

    server = serve_page(args.http_port)
    page = (
        f"http://127.0.0.1:{server.server_address[1]}/index.html"
        f"?stream={args.stream_url}&name={args.name}&group={args.group}"
    )
    print(f"live list page: {page}", flush=True)
    n = 0
    try:
        while True:
            time.sleep(args.interval or 3600)
            if args.interval:
                n += 1
                add(f"item {n}")
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        iii.shutdown()


if __name__ == "__main__":
    main()
