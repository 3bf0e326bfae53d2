"""The ``iii`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from importlib.metadata import version
from typing import Any

import attrs

from iii_core.config import EngineConfig, load_config
from iii_core.errors import ConfigError, PluginError
from iii_core.logs import setup_logging
from iii_core.plugins import Plugins

log = logging.getLogger("iii")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iii",
        description="Run the iii engine. With no config.yaml in the working directory it runs "
        "the default configuration (every installed module that needs no configuration).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["run", "modules"],
        default="run",
        help="'run' (default) starts the engine; 'modules' lists installed modules and adapters",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    group.add_argument(
        "--use-default-config", action="store_true", help="ignore config.yaml, run the defaults"
    )
    parser.add_argument("--port", type=int, help="worker WebSocket port (default 49134)")
    parser.add_argument("--host", help="worker WebSocket bind address (default 127.0.0.1)")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("III_LOG_LEVEL", "info"),
        choices=["trace", "debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--log-format", default=os.environ.get("III_LOG_FORMAT", "human"), choices=["human", "json"]
    )
    parser.add_argument("-v", "--version", action="version", version=f"iii {version('iii-core')}")
    return parser


def _load(args: argparse.Namespace) -> EngineConfig:
    if args.config:
        config = load_config(args.config)
    elif not args.use_default_config and os.path.exists("config.yaml"):
        config = load_config("config.yaml")
    else:
        config = EngineConfig()
    changes = {}
    if args.port is not None:
        changes["port"] = args.port
    if args.host is not None:
        changes["host"] = args.host
    return attrs.evolve(config, **changes) if changes else config


def _modules_listing(plugins: Plugins) -> str:
    rows = plugins.listing()
    headers = ("kind", "class", "distribution", "default")
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    for row in rows:
        lines.append("  ".join(row[h].ljust(w) for h, w in zip(headers, widths, strict=True)))
    return "\n".join(lines)


async def _serve(config: EngineConfig, plugins: Plugins) -> None:
    from iii_core.engine import Engine

    engine = Engine(config, plugins)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
        await stop.wait()
        log.info("shutting down (grace period %d ms)", config.shutdown_grace_ms)
    finally:
        await engine.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = "debug" if args.log_level == "trace" else args.log_level
    setup_logging(level, args.log_format)
    plugins = Plugins()
    try:
        plugins.load()
        if args.command == "modules":
            print(_modules_listing(plugins))
            return 0
        config = _load(args)
        if config.modules is None:
            log.info("running the default configuration (no config file)")
        else:
            log.info("using config file %s", config.source)
        runner: Callable[[Coroutine[Any, Any, None]], None]
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is a Linux dependency
            runner = asyncio.run
        runner(_serve(config, plugins))
    except (ConfigError, PluginError) as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
