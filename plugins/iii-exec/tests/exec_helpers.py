"""Helpers for the exec tests: real processes, real files, the process table read with ``ps``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from iii_exec.module import ExecModule


def exec_config(**config: Any) -> dict[str, Any]:
    return {"modules": [{"class": "modules::shell::ExecModule", "config": config}]}


def exec_module(engine: Any) -> ExecModule:
    return next(m for m in engine.modules if isinstance(m, ExecModule))


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def live_in_group(pgid: int) -> list[str]:
    """Non-zombie processes of process group ``pgid``, read with ``ps`` (independently of the
    module's own ``/proc`` reader)."""
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for row in out.splitlines():
        _pid, group, stat, *_ = row.split(None, 3)
        if int(group) == pgid and not stat.startswith("Z"):
            found.append(row.strip())
    return found


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def write(path: Path, text: str) -> None:
    """Write a file in one go (as an editor's save does)."""
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)
