"""The embedded default adapter: items in SQLite, envelopes fanned out in-process.

SQLite statements on small rows take microseconds, so they run on the event loop: that keeps
every write and ``update`` atomic without locks (one loop, no awaits inside a write).  The file
is opened in WAL mode with ``synchronous=NORMAL``: a committed write survives an engine crash,
and only an OS crash can lose the last few.  ``path: ":memory:"`` keeps everything in memory
(tests, throwaway data).
"""

from __future__ import annotations

import builtins
import logging
import os
import sqlite3
from collections.abc import Callable
from typing import Any

import attrs
import msgspec

from iii_core import ConfigError, structure
from iii_stream.adapter import EventSink, StreamAdapter

log = logging.getLogger("iii.stream.sqlite")

_encode = msgspec.json.encode
_decode = msgspec.json.decode

DEFAULT_PATH = os.path.join("data", "iii_stream.sqlite3")


@attrs.define(frozen=True)
class SqliteAdapterConfig:
    """``path``: the database file (``:memory:`` for none).  The reference KvStore keys are
    accepted too: ``store_method: in_memory`` means ``:memory:``; ``file_based`` stores in
    ``<file_path>/iii_stream.sqlite3`` (or ``file_path`` itself when it ends in ``.db`` or
    ``.sqlite3``); ``save_interval_ms`` is accepted and unused (every write commits)."""

    path: str | None = None
    store_method: str | None = None
    file_path: str | None = None
    save_interval_ms: int | None = None

    def resolved_path(self, where: str) -> str:
        if self.path is not None:
            return self.path
        if self.store_method is None:
            return self.file_path or DEFAULT_PATH
        if self.store_method == "in_memory":
            return ":memory:"
        if self.store_method == "file_based":
            base = self.file_path or "data"
            if base.endswith((".db", ".sqlite3", ".sqlite")):
                return base
            return os.path.join(base, "iii_stream.sqlite3")
        raise ConfigError(
            f"{where}: store_method must be 'in_memory' or 'file_based', got {self.store_method!r}"
        )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_items (
    stream TEXT NOT NULL,
    grp TEXT NOT NULL,
    item TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (stream, grp, item)
)
"""


def _open(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute(_SCHEMA)
    return db


class SqliteStreamAdapter(StreamAdapter):
    def __init__(self, config: dict[str, Any], where: str) -> None:
        self.config = structure(SqliteAdapterConfig, config, where)
        self.path = self.config.resolved_path(where)
        self._db: sqlite3.Connection | None = None
        self._sink: EventSink | None = None

    async def start(self, sink: EventSink) -> None:
        self._db = _open(self.path)
        self._sink = sink
        log.info("stream items stored in SQLite at %s", self.path)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._sink = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the stream SQLite store is closed")
        return self._db

    def _get(self, stream: str, group: str, item: str) -> Any:
        row = self.db.execute(
            "SELECT value FROM stream_items WHERE stream=? AND grp=? AND item=?",
            (stream, group, item),
        ).fetchone()
        return None if row is None else _decode(row[0])

    def _put(self, stream: str, group: str, item: str, value: Any) -> None:
        # Upsert keeps the rowid, so an updated item keeps its place in `list`.
        self.db.execute(
            "INSERT INTO stream_items (stream, grp, item, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (stream, grp, item) DO UPDATE SET value=excluded.value",
            (stream, group, item, _encode(value)),
        )

    async def get(self, stream: str, group: str, item: str) -> Any:
        return self._get(stream, group, item)

    async def set(self, stream: str, group: str, item: str, value: Any) -> Any:
        old = self._get(stream, group, item)
        self._put(stream, group, item, value)
        return old

    async def delete(self, stream: str, group: str, item: str) -> Any:
        old = self._get(stream, group, item)
        self.db.execute(
            "DELETE FROM stream_items WHERE stream=? AND grp=? AND item=?", (stream, group, item)
        )
        return old

    async def update(
        self, stream: str, group: str, item: str, apply: Callable[[Any], Any]
    ) -> tuple[Any, Any]:
        old = self._get(stream, group, item)
        new = apply(old)
        self._put(stream, group, item, new)
        return old, new

    async def list(self, stream: str, group: str) -> list[Any]:
        rows = self.db.execute(
            "SELECT value FROM stream_items WHERE stream=? AND grp=? ORDER BY rowid",
            (stream, group),
        ).fetchall()
        return [_decode(row[0]) for row in rows]

    async def list_groups(self, stream: str) -> builtins.list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT grp FROM stream_items WHERE stream=? ORDER BY grp", (stream,)
        ).fetchall()
        return [row[0] for row in rows]

    async def list_all(self) -> dict[str, builtins.list[str]]:
        out: dict[str, list[str]] = {}
        for stream, group in self.db.execute(
            "SELECT DISTINCT stream, grp FROM stream_items ORDER BY stream, grp"
        ):
            out.setdefault(stream, []).append(group)
        return out

    async def publish(self, envelope: dict[str, Any], payload: bytes) -> None:
        if self._sink is not None:
            self._sink(envelope, payload)
