"""The embedded store: one SQLite database, used by the state module's default adapter
(``modules::state::adapters::KvStore``) and by the KV server.

Every operation runs on one dedicated thread that owns the one connection, so calls are
serialised without blocking the event loop; a read-modify-write (``set``, ``delete``,
``update``) runs in one ``BEGIN IMMEDIATE`` transaction, which also keeps it atomic against other
processes opening the same file.  Rows keep their ``rowid`` on overwrite, so ``list`` returns
values in insertion order as the reference's KV store does.  File databases use WAL with
``synchronous=NORMAL``: a write survives a crash of the engine process as soon as the call
returns.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import attrs
import msgspec

from iii_core import structure
from iii_core.errors import ConfigError
from iii_state.ops import UpdateOp, apply_ops
from iii_state.store import StoreError

log = logging.getLogger("iii.state.sqlite")

T = TypeVar("T")
MEMORY = ":memory:"
MIB = 1024 * 1024

_encode = msgspec.json.encode
_decode = msgspec.json.decode


@attrs.define(frozen=True)
class SqliteStoreConfig:
    """Config of the embedded store.

    ``path``: the SQLite file (created with its directory), or ``:memory:``.  The reference's keys
    are accepted too: ``store_method: in_memory`` means ``:memory:``; ``file_path`` is the file
    (when it names an existing directory, ``store.sqlite3`` inside it); ``save_interval_ms`` is
    accepted and ignored because every write is durable when the call returns.
    ``max_entries``: a bound on the number of keys (default: unbounded for a file, 1 000 000 in
    memory); a ``set`` or ``update`` that would add a key beyond it fails.
    ``max_value_bytes``: the largest JSON value accepted (default 16 MiB).
    """

    path: str | None = None
    store_method: Literal["file_based", "in_memory"] | None = None
    file_path: str | None = None
    save_interval_ms: int | None = None
    max_entries: int | None = None
    max_value_bytes: int = 16 * MIB


def sqlite_config(config: Any, where: str) -> SqliteStoreConfig:
    parsed = structure(SqliteStoreConfig, config, where)
    if parsed.path is not None and (parsed.file_path is not None or parsed.store_method):
        raise ConfigError(f"{where}: give either 'path' or 'store_method'/'file_path', not both")
    if parsed.max_entries is not None and parsed.max_entries < 1:
        raise ConfigError(
            f"{where}: key 'max_entries' must be at least 1 (got {parsed.max_entries})"
        )
    if parsed.max_value_bytes < 1:
        raise ConfigError(
            f"{where}: key 'max_value_bytes' must be at least 1 (got {parsed.max_value_bytes})"
        )
    return parsed


def resolve_path(config: SqliteStoreConfig, default_path: str) -> str:
    if config.path is not None:
        return config.path
    if config.store_method == "in_memory":
        return MEMORY
    if config.file_path is not None:
        if os.path.isdir(config.file_path):
            return os.path.join(config.file_path, "store.sqlite3")
        return config.file_path
    return default_path


class SqliteStore:
    """A :class:`~iii_state.store.Store` in one SQLite database (see the module docstring)."""

    def __init__(self, config: SqliteStoreConfig, default_path: str) -> None:
        self.config = config
        self.path = resolve_path(config, default_path)
        self.max_entries = config.max_entries or (1_000_000 if self.path == MEMORY else None)
        self._pool: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._count = 0

    # ------------------------------------------------------------------ life cycle

    async def open(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iii-sqlite")
        try:
            await self._run(self._open)
        except Exception as exc:
            self._pool.shutdown(wait=False)
            self._pool = None
            raise StoreError(f"cannot open the SQLite store {self.path!r}: {exc}") from exc
        if self.path == MEMORY:
            log.info("state store is in memory: its data is lost when the engine stops")

    def _open(self) -> None:
        if self.path != MEMORY:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        if self.path != MEMORY:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS kv ("
            " idx TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
            " PRIMARY KEY (idx, key))"
        )
        self._count = db.execute("SELECT COUNT(*) FROM kv").fetchone()[0]
        self._db = db

    async def close(self) -> None:
        if self._pool is None:
            return
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
        self._pool = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            raise StoreError("the SQLite store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ operations

    async def get(self, index: str, key: str) -> tuple[bool, Any]:
        return await self._run(self._get, index, key)

    async def set(self, index: str, key: str, value: Any) -> tuple[bool, Any]:
        encoded = self._encode(value)
        return await self._run(self._write, index, key, lambda _e, _o: encoded)

    async def delete(self, index: str, key: str) -> tuple[bool, Any]:
        return await self._run(self._delete, index, key)

    async def update(self, index: str, key: str, ops: list[UpdateOp]) -> tuple[bool, Any, Any]:
        new: list[Any] = []

        def compute(exists: bool, old: Any) -> bytes:
            new.append(apply_ops(old, exists, ops))
            return self._encode(new[0])

        existed, old = await self._run(self._write, index, key, compute)
        return existed, old, new[0]

    async def list(self, index: str) -> list[Any]:
        return await self._run(self._list, index)

    async def list_groups(self, prefix: str = "") -> builtins.list[str]:
        return await self._run(self._groups, prefix)

    # ------------------------------------------------------------------ on the store's thread

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the SQLite store is not open")
        return self._db

    def _get(self, index: str, key: str) -> tuple[bool, Any]:
        row = (
            self._conn()
            .execute("SELECT value FROM kv WHERE idx = ? AND key = ?", (index, key))
            .fetchone()
        )
        return (False, None) if row is None else (True, _decode(row[0]))

    def _write(
        self, index: str, key: str, compute: Callable[[bool, Any], bytes]
    ) -> tuple[bool, Any]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            exists, old = self._get(index, key)
            if not exists and self.max_entries is not None and self._count >= self.max_entries:
                raise StoreError(
                    f"the store is full ({self.max_entries} keys, the 'max_entries' bound)"
                )
            encoded = compute(exists, old)
            db.execute(
                "INSERT INTO kv (idx, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (idx, key) DO UPDATE SET value = excluded.value",
                (index, key, encoded.decode()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if not exists:
            self._count += 1
        return exists, old

    def _delete(self, index: str, key: str) -> tuple[bool, Any]:
        db = self._conn()
        row = db.execute(
            "DELETE FROM kv WHERE idx = ? AND key = ? RETURNING value", (index, key)
        ).fetchone()
        if row is None:
            return False, None
        self._count -= 1
        return True, _decode(row[0])

    def _list(self, index: str) -> builtins.list[Any]:
        rows = self._conn().execute("SELECT value FROM kv WHERE idx = ? ORDER BY rowid", (index,))
        return [_decode(row[0]) for row in rows]

    def _groups(self, prefix: str) -> builtins.list[str]:
        rows = self._conn().execute(
            "SELECT DISTINCT idx FROM kv WHERE substr(idx, 1, ?) = ? ORDER BY idx",
            (len(prefix), prefix),
        )
        return [row[0] for row in rows]

    def _encode(self, value: Any) -> bytes:
        try:
            encoded = _encode(value)
        except (TypeError, OverflowError) as exc:
            raise StoreError(f"the value cannot be stored as JSON: {exc}") from exc
        if len(encoded) > self.config.max_value_bytes:
            raise StoreError(
                f"the value is {len(encoded)} bytes, more than 'max_value_bytes' "
                f"({self.config.max_value_bytes})"
            )
        return encoded
