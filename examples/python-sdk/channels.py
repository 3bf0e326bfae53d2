"""Stream bytes to another function through a data channel, and exit.

python examples/python-sdk/channels.py
"""

from __future__ import annotations

import asyncio
import hashlib

import iii_worker


async def main() -> None:
    async with iii_worker.connect(name="channels-example") as worker:

        async def checksum(data: dict[str, iii_worker.ChannelReader]) -> dict[str, object]:
            body = await data["upload"].read_all()  # the ref arrived as a reader object
            return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

        worker.register_function("examples.checksum", checksum)

        channel = await worker.create_channel()
        payload = b"0123456789" * 100_000

        async def upload() -> None:
            async with channel.writer:  # closing the writer ends the stream
                await channel.writer.write(payload)

        result, _ = await asyncio.gather(
            worker.call("examples.checksum", {"upload": channel.reader}), upload()
        )
        assert result["sha256"] == hashlib.sha256(payload).hexdigest()
        print(result)


if __name__ == "__main__":
    asyncio.run(main())
