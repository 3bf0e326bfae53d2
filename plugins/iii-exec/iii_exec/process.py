"""One command in its own process group, its output relayed with a prefix, and a stop that
leaves nothing behind.

Every command starts a new session (``start_new_session``), so its process group holds the shell,
the program and anything they fork.  Stopping signals the whole group: SIGTERM, a grace period,
then SIGKILL, and it returns only once no live member of the group is left.  Liveness is read from
``/proc`` where it exists, ignoring zombies: a grandchild re-parented to a PID 1 that does not reap
would otherwise look alive forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import IO, TextIO

log = logging.getLogger("iii.exec")

_POLL = 0.05


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids of process group ``pgid``.

    Without ``/proc`` it falls back to ``killpg(pgid, 0)``, which also counts zombies.
    """
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ProcessGroup:
    """A running command (``sh -c``) and the tasks relaying its output."""

    def __init__(self, proc: subprocess.Popen[bytes], command: str, label: str) -> None:
        self.proc = proc
        self.command = command
        self.label = label
        self.pgid = proc.pid  # leader of its own new session
        self.started = time.monotonic()
        self._relays: list[asyncio.Task[None]] = []

    @classmethod
    def start(
        cls,
        command: str,
        *,
        label: str,
        cwd: str,
        env: Mapping[str, str],
        max_line_bytes: int,
    ) -> ProcessGroup:
        """Start ``command`` through ``sh -c`` in a new session; raises ``OSError``.

        ``subprocess.Popen`` rather than ``asyncio.create_subprocess_exec``: the fork is
        synchronous, so no cancellation can land half-way (asyncio's transport then kills only the
        leader and waits for pipes that background grandchildren keep open)."""
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        group = cls(proc, command, label)
        assert proc.stdout is not None and proc.stderr is not None
        group._relays = [
            asyncio.create_task(_relay(proc.stdout, label, "stdout", max_line_bytes)),
            asyncio.create_task(_relay(proc.stderr, label, "stderr", max_line_bytes)),
        ]
        return group

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    async def wait(self) -> int:
        """Wait for the command (the group leader) to exit and its output to be relayed.

        Polled (``waitpid`` with ``WNOHANG``): cheap, and independent of the pipes, which a
        background grandchild may keep open for ever."""
        while (code := self.proc.poll()) is None:
            await asyncio.sleep(_POLL)
        await self._drain(1.0)
        return code

    def alive(self) -> bool:
        return bool(group_members(self.pgid))

    async def stop(self, grace: float) -> None:
        """SIGTERM to the group, up to ``grace`` seconds, then SIGKILL; returns when no member is
        left.  If the stop itself is cancelled, the group is killed before the cancellation goes
        on, so that an interrupted shutdown still leaves no orphan."""
        try:
            if self.alive():
                _signal_group(self.pgid, signal.SIGTERM)
                deadline = time.monotonic() + grace
                while self.alive() and time.monotonic() < deadline:
                    await asyncio.sleep(_POLL)
            if self.alive():
                log.warning(
                    "[%s] did not stop within %.1f s of SIGTERM; sending SIGKILL to its process "
                    "group",
                    self.label,
                    grace,
                )
                _signal_group(self.pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while self.alive() and time.monotonic() < deadline:
                await asyncio.sleep(_POLL)
            deadline = time.monotonic() + 2.0
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(_POLL)
        finally:
            self.kill_now()
            await self._drain(0.5)

    def kill_now(self) -> None:
        """SIGKILL whatever is left of the group (synchronous: safe in ``finally`` blocks)."""
        if self.alive():
            _signal_group(self.pgid, signal.SIGKILL)

    async def _drain(self, timeout: float) -> None:
        """Let the relays print what is left; a grandchild holding the pipe must not block us."""
        if not self._relays:
            return
        with contextlib.suppress(asyncio.CancelledError):
            _, pending = await asyncio.wait(self._relays, timeout=timeout)
            for task in pending:
                task.cancel()
        self._relays = [t for t in self._relays if not t.done()]


async def _relay(pipe: IO[bytes], label: str, which: str, max_line: int) -> None:
    """Copy ``pipe`` to the engine's stdout or stderr line by line with a ``[label]`` prefix.

    Lines longer than ``max_line`` bytes are split, so the buffer stays bounded."""
    buffer = b""
    stream = asyncio.StreamReader(limit=max_line)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), pipe
    )
    try:
        while True:
            chunk = await stream.read(max_line)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            while len(buffer) >= max_line:
                lines.append(buffer[:max_line])
                buffer = buffer[max_line:]
            if lines:
                _write(which, label, lines)
        if buffer:
            _write(which, label, [buffer])
    except (OSError, ValueError) as exc:
        log.debug("[%s] %s relay ended: %s", label, which, exc)
    finally:
        transport.close()


def _write(which: str, label: str, lines: list[bytes]) -> None:
    # Looked up on every write so that a redirected sys.stdout (tests, log capture) is honoured.
    target: TextIO = sys.stdout if which == "stdout" else sys.stderr
    text = "".join(
        f"[{label}] {line.decode('utf-8', 'replace').rstrip(chr(13))}\n" for line in lines
    )
    with contextlib.suppress(OSError, ValueError):
        target.write(text)
        target.flush()
