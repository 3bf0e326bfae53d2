"""Register a function, call it through the engine, and exit.

iii &                               # the engine, default port 49134
python examples/python-sdk/hello.py  # III_URL overrides the engine URL
"""

from __future__ import annotations

import asyncio

import iii_worker


async def main() -> None:
    async with iii_worker.connect(name="hello-example") as worker:

        @worker.function("examples.greet", description="Say hello")
        async def greet(data: dict[str, str]) -> dict[str, str]:
            return {"message": f"Hello, {data['name']}!"}

        def shout(data: dict[str, str]) -> str:  # sync handlers run in a thread
            return data["text"].upper()

        worker.register_function("examples.shout", shout)

        print(await worker.call("examples.greet", {"name": "Ada"}))
        print(await worker.call("examples.shout", {"text": "quiet please"}))
        try:
            await worker.call("examples.missing", {})
        except iii_worker.FunctionNotFoundError as exc:
            print("not found:", exc.code)


if __name__ == "__main__":
    asyncio.run(main())
