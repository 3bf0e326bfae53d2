"""One connection's outbound side: a frame queue drained by one task.

Registration methods are synchronous (they are usually called before the loop runs the
connection), so they need a queue they can append to without awaiting.  Calls and results wait
for room when the queue is above its high-water mark, which bounds it while the engine (or the
network) is slower than the code producing calls.
"""

from __future__ import annotations

import asyncio
from collections import deque

import websockets
from websockets.asyncio.client import ClientConnection


class FrameWriter:
    """Frames are JSON bytes sent as text frames, in the order they were queued."""

    def __init__(self, ws: ClientConnection, high_water: int) -> None:
        self._ws = ws
        self._frames: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._high_water = high_water
        self.alive = True

    @property
    def full(self) -> bool:
        return len(self._frames) >= self._high_water

    def put_nowait(self, frame: bytes) -> None:
        if not self.alive:
            return
        self._frames.append(frame)
        if self.full:
            self._room.clear()
        self._wake.set()

    async def wait_room(self) -> None:
        """Return when the queue is below its high-water mark or the connection is gone."""
        await self._room.wait()

    async def run(self) -> None:
        frames = self._frames
        try:
            while True:
                while frames:
                    frame = frames.popleft()
                    if len(frames) < self._high_water:
                        self._room.set()
                    await self._ws.send(frame, text=True)
                self._wake.clear()
                await self._wake.wait()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """The connection is gone: drop what is queued and release every waiter."""
        self.alive = False
        self._frames.clear()
        self._room.set()
