"""iii exec module: run and watch worker processes for development."""

from iii_exec.config import ExecConfig
from iii_exec.globs import Glob
from iii_exec.module import ExecModule

__all__ = ["ExecConfig", "ExecModule", "Glob"]
