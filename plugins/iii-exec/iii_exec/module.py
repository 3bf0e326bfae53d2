"""``modules::shell::ExecModule``: run a command pipeline next to the engine and keep it fresh.

The commands of ``exec`` run in order; every one but the last must exit 0, the last is the
long-running process (typically a worker).  A change to a file matching ``watch`` restarts the whole
pipeline once the burst of changes has been quiet for ``debounce_ms``.  A crash of the last command
is reported and the command restarted after a delay that doubles on every consecutive crash, so a
broken worker does not hot-loop.  Engine shutdown stops every process group the module started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import watchfiles

from iii_core import ConfigError, Engine, Module
from iii_exec.config import parse_config
from iii_exec.process import ProcessGroup

log = logging.getLogger("iii.exec")
# watchfiles logs every batch at INFO ("1 change detected"); the module logs the restarts itself.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

#: How many changed paths a restart log line names (the rest are counted).
_LOGGED_PATHS = 5
#: Shutdown must finish inside the engine's per-module deadline (5 s).
_SHUTDOWN_GRACE_CAP = 3.5


def _label(command: str) -> str:
    text = " ".join(command.split())
    return text if len(text) <= 40 else text[:39] + "…"


class ExecModule(Module):
    """Runs ``exec`` and restarts it when files matching ``watch`` change."""

    name = "ExecModule"

    def __init__(self, engine: Engine, config: dict[str, Any] | None) -> None:
        super().__init__(engine, config)
        self.where = "modules::shell::ExecModule config"
        self.config, self.globs = parse_config(config, self.where)
        self.cwd = os.path.abspath(self.config.cwd or os.getcwd())
        #: Times the pipeline was (re)started from its first command, and the last command was
        #: started, and exited on its own (counters for logs and tests).
        self.pipeline_runs = 0
        self.starts = 0
        self.crashes = 0
        self._groups: list[ProcessGroup] = []
        self._restart = asyncio.Event()
        self._changed: list[str] = []
        self._changed_total = 0
        self._debounce: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def gauges(self) -> dict[str, int]:
        return {
            "exec_processes": len(self._groups),
            "exec_pipeline_runs_total": self.pipeline_runs,
            "exec_crashes_total": self.crashes,
        }

    # ------------------------------------------------------------------ life cycle

    async def initialize(self) -> None:
        self._check_cwd()

    def _check_cwd(self) -> None:
        if not os.path.isdir(self.cwd):
            raise ConfigError(f"{self.where}: key 'cwd': directory {self.cwd!r} does not exist")

    async def run(self) -> None:
        if self._stopping:
            return
        self._tasks.append(asyncio.create_task(self._supervise(), name="exec supervisor"))
        for recursive, roots in self._watch_roots().items():
            self._tasks.append(
                asyncio.create_task(self._watch(roots, recursive), name=f"exec watch {roots}")
            )
        try:
            await asyncio.wait(self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()

    async def shutdown(self) -> None:
        """Stop every process group; if this is itself cancelled (the engine's deadline), kill
        what is left synchronously so nothing outlives the engine."""
        self._stopping = True
        if self._debounce is not None:
            self._debounce.cancel()
        for task in self._tasks:
            task.cancel()
        try:
            if self._tasks:
                await asyncio.wait(self._tasks)
            await self._stop_groups(self._shutdown_grace())
        finally:
            for group in self._groups:
                group.kill_now()

    # ------------------------------------------------------------------ pipeline

    def _env(self) -> dict[str, str]:
        """The engine's environment, ``III_URL`` pointing at this engine, then ``env``."""
        env = dict(os.environ)
        host = self.engine.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        if self.engine.port is not None:
            env["III_URL"] = f"ws://{host}:{self.engine.port}"
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.config.env)
        return env

    def _start(self, command: str) -> ProcessGroup | None:
        label = self.config.name or _label(command)
        try:
            group = ProcessGroup.start(
                command,
                label=label,
                cwd=self.cwd,
                env=self._env(),
                max_line_bytes=self.config.max_line_bytes,
            )
        except OSError as exc:
            log.error("[%s] could not start `%s`: %s", label, command, exc)
            return None
        self._groups.append(group)
        return group

    async def _stop_groups(self, grace: float) -> None:
        """Stop every group of the current pipeline run, the newest first."""
        while self._groups:
            group = self._groups[-1]
            await group.stop(grace)
            self._groups.remove(group)

    async def _wait_or_change(self, group: ProcessGroup) -> int | None:
        """The exit code of ``group``, or None when a watched change came first."""
        exited = asyncio.ensure_future(group.wait())
        changed = asyncio.ensure_future(self._restart.wait())
        try:
            await asyncio.wait({exited, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            if not exited.done():
                exited.cancel()
        if exited.done() and not exited.cancelled():
            return exited.result()
        return None

    def _take_change(self) -> str:
        """Consume the pending restart request and describe what changed."""
        self._restart.clear()
        names = ", ".join(self._changed)
        more = self._changed_total - len(self._changed)
        if more > 0:
            names += f" and {more} more file change(s)"
        self._changed.clear()
        self._changed_total = 0
        return names

    async def _run_steps(self) -> bool | None:
        """Run every command but the last.  True: all exited 0; False: one failed (logged);
        None: a watched change interrupted them."""
        steps = self.config.exec[:-1]
        total = len(self.config.exec)
        for index, command in enumerate(steps, start=1):
            group = self._start(command)
            if group is None:
                log.error(
                    "exec pipeline stopped: step %d/%d could not start; the rest did not run",
                    index,
                    total,
                )
                return False
            code = await self._wait_or_change(group)
            if code is None:
                return None
            if code != 0:
                log.error(
                    "exec pipeline stopped: step %d/%d `%s` exited with code %d; the remaining "
                    "step(s) did not run%s",
                    index,
                    total,
                    command,
                    code,
                    " (waiting for a watched file to change)" if self.globs else "",
                )
                return False
        return True

    async def _supervise(self) -> None:
        grace = self.config.stop_grace_ms / 1000
        first_delay = self.config.restart_delay_ms / 1000
        delay = first_delay
        last = self.config.exec[-1]
        try:
            while not self._stopping:
                self.pipeline_runs += 1
                outcome = await self._run_steps()
                if outcome is False:
                    await self._restart.wait()
                if outcome is not True:
                    log.info("change in %s: restarting the exec pipeline", self._take_change())
                    await self._stop_groups(grace)
                    delay = first_delay
                    continue
                while not self._stopping:
                    group = self._start(last)
                    if group is not None:
                        self.starts += 1
                        code = await self._wait_or_change(group)
                        if code is None:
                            break
                        ran = time.monotonic() - group.started
                        await group.stop(grace)  # its leftovers (background children)
                        self._groups.remove(group)
                        self.crashes += 1
                        if ran * 1000 >= self.config.stable_after_ms:
                            delay = first_delay
                        log.warning(
                            "[%s] `%s` exited with code %d after %.1f s; restarting it in %.1f s",
                            group.label,
                            last,
                            code,
                            ran,
                            delay,
                        )
                    try:
                        await asyncio.wait_for(self._restart.wait(), delay)
                        break
                    except TimeoutError:
                        delay = min(delay * 2, self.config.max_restart_delay_ms / 1000)
                if self._stopping:
                    break
                log.info("change in %s: restarting the exec pipeline", self._take_change())
                await self._stop_groups(grace)
                delay = first_delay
        finally:
            # Cancelled by shutdown (or by the engine): stop gracefully, but if this wait is
            # itself interrupted, kill what is left before giving up.
            try:
                await self._stop_groups(self._shutdown_grace())
            finally:
                for group in self._groups:
                    group.kill_now()

    def _shutdown_grace(self) -> float:
        return min(self.config.stop_grace_ms / 1000, _SHUTDOWN_GRACE_CAP)

    # ------------------------------------------------------------------ watching

    def _watch_roots(self) -> dict[bool, list[str]]:
        """Directories to watch, split by whether a recursive watch is needed.  A root that does
        not exist yet is replaced by its nearest existing ancestor, watched recursively."""
        roots: dict[bool, set[str]] = {True: set(), False: set()}
        for glob in self.globs:
            root = os.path.normpath(os.path.join(self.cwd, glob.root()))
            recursive = glob.recursive
            while not os.path.isdir(root):
                root, recursive = os.path.dirname(root), True
            roots[recursive].add(root)
        # A directory watched recursively covers its flat watch and every root below it.
        out: dict[bool, list[str]] = {}
        rec = sorted(roots[True])
        rec = [r for r in rec if not any(_under(r, o) for o in rec if o != r)]
        if rec:
            out[True] = rec
        flat = sorted(r for r in roots[False] if not any(_under(r, o) or r == o for o in rec))
        if flat:
            out[False] = flat
        return out

    def matches(self, path: str) -> str | None:
        """The path relative to ``cwd`` when it matches a ``watch`` pattern, else None."""
        relative = os.path.relpath(path, self.cwd).replace(os.sep, "/")
        absolute = os.path.abspath(path).replace(os.sep, "/")
        for glob in self.globs:
            if glob.normalised.startswith("/"):
                if glob.matches(absolute):
                    return relative
            elif not relative.startswith("../") and glob.matches(relative):
                return relative
        return None

    async def _watch(self, roots: list[str], recursive: bool) -> None:
        try:
            async for changes in watchfiles.awatch(
                *roots, recursive=recursive, debounce=1_600, step=50
            ):
                matched = [m for _, path in changes if (m := self.matches(path)) is not None]
                if matched:
                    self._note_change(sorted(set(matched)))
        except Exception as exc:
            log.error(
                "watching %s failed: %s; file changes no longer restart the exec pipeline",
                ", ".join(roots),
                exc,
            )

    def _note_change(self, paths: list[str]) -> None:
        """Record changed paths (bounded) and (re)arm the debounce timer."""
        for path in paths:
            if path in self._changed:
                continue
            self._changed_total += 1
            if len(self._changed) < _LOGGED_PATHS:
                self._changed.append(path)
        if self._debounce is not None:
            self._debounce.cancel()
        self._debounce = asyncio.get_running_loop().call_later(
            self.config.debounce_ms / 1000, self._fire
        )

    def _fire(self) -> None:
        self._debounce = None
        if not self._stopping:
            self._restart.set()


def _under(path: str, root: str) -> bool:
    with contextlib.suppress(ValueError):
        return os.path.commonpath([path, root]) == root and path != root
    return False
