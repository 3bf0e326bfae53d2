"""The built-in queue adapter: jobs persisted in an embedded SQLite file.

Calls run on the event loop thread: each is one short transaction (tens of microseconds in WAL
mode), cheaper than a hop to a thread pool.  One engine owns a database file; when it opens the
file, jobs leased by a previous run of the engine are made visible again at once (their worker
and engine are gone), instead of waiting for their leases to lapse.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from typing import Any, Literal

import attrs

from iii_core import structure
from iii_queue.job import DeadLetter, Job, decode_job, now_ms

log = logging.getLogger("iii.queue.sqlite")

WAITING, ACTIVE, DEAD = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    group_id TEXT NOT NULL,
    state INTEGER NOT NULL,
    due INTEGER NOT NULL,
    lease TEXT,
    body BLOB NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (topic, state, due, id);
CREATE INDEX IF NOT EXISTS jobs_group ON jobs (topic, state, group_id, id);
"""
# ``due``: for a waiting job, when it becomes visible; for an active one, when its lease lapses;
# for a dead letter, when it failed.


@attrs.define(frozen=True)
class SqliteConfig:
    """``path``: the database file (``:memory:`` keeps jobs in memory only, for tests).
    ``synchronous``: SQLite's ``synchronous`` pragma; ``normal`` survives a crash of the
    process, ``full`` also a power loss."""

    path: str = "./data/queue.db"
    synchronous: Literal["normal", "full"] = "normal"


class SqliteQueueAdapter:
    """Implements :class:`~iii_queue.adapter.QueueAdapter` on one SQLite connection."""

    def __init__(self, config: dict[str, Any] | None = None, where: str = "sqlite adapter") -> None:
        self.config = structure(SqliteConfig, config, where)
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the SQLite queue adapter is closed")
        return self._db

    async def connect(self) -> None:
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        path = self.config.path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.config.synchronous.upper()}")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        recovered = db.execute(
            "UPDATE jobs SET state=?, due=?, lease=NULL WHERE state=?", (WAITING, now_ms(), ACTIVE)
        ).rowcount
        if recovered:
            log.info("%d jobs leased by a previous run are visible again", recovered)
        return db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def push(self, job: Job, visible_at: int) -> None:
        self.db.execute(
            "INSERT INTO jobs (id, topic, group_id, state, due, body) VALUES (?, ?, ?, ?, ?, ?)",
            (job.id, job.topic, job.group_id, WAITING, visible_at, job.encode()),
        )

    async def claim(
        self, topic: str, *, limit: int, lease_until: int, fifo: bool, now: int
    ) -> list[Job]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "UPDATE jobs SET state=?, lease=NULL WHERE topic=? AND state=? AND due<=?",
                (WAITING, topic, ACTIVE, now),
            )
            if fifo:
                ids = [
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM jobs WHERE id IN (SELECT MIN(id) FROM jobs WHERE topic=? "
                        "AND state<? GROUP BY group_id) AND state=? AND due<=? "
                        "ORDER BY due, id LIMIT ?",
                        (topic, DEAD, WAITING, now, limit),
                    )
                ]
            else:
                ids = [
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM jobs WHERE topic=? AND state=? AND due<=? "
                        "ORDER BY due, id LIMIT ?",
                        (topic, WAITING, now, limit),
                    )
                ]
            if not ids:
                db.execute("COMMIT")
                return []
            lease = uuid.uuid4().hex
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"UPDATE jobs SET state=?, due=?, lease=? WHERE id IN ({marks}) RETURNING id, body",
                (ACTIVE, lease_until, lease, *ids),
            ).fetchall()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        bodies = dict(rows)
        return [decode_job(bodies[i], lease) for i in ids]

    async def extend(self, topic: str, leases: list[tuple[str, str]], lease_until: int) -> None:
        self.db.executemany(
            "UPDATE jobs SET due=? WHERE id=? AND lease=? AND state=?",
            [(lease_until, job_id, lease, ACTIVE) for job_id, lease in leases],
        )

    async def ack(self, job: Job) -> bool:
        cur = self.db.execute(
            "DELETE FROM jobs WHERE id=? AND lease=? AND state=?", (job.id, job.lease, ACTIVE)
        )
        return cur.rowcount == 1

    async def release(self, job: Job, visible_at: int) -> bool:
        cur = self.db.execute(
            "UPDATE jobs SET state=?, due=?, lease=NULL, body=? WHERE id=? AND lease=? AND state=?",
            (WAITING, visible_at, job.encode(), job.id, job.lease, ACTIVE),
        )
        return cur.rowcount == 1

    async def dead_letter(self, job: Job, error: str, failed_at: int) -> bool:
        cur = self.db.execute(
            "UPDATE jobs SET state=?, due=?, lease=NULL, body=?, error=? "
            "WHERE id=? AND lease=? AND state=?",
            (DEAD, failed_at, job.encode(), error, job.id, job.lease, ACTIVE),
        )
        return cur.rowcount == 1

    async def topics(self) -> list[str]:
        return [
            row[0]
            for row in self.db.execute("SELECT DISTINCT topic FROM jobs WHERE state<?", (DEAD,))
        ]

    async def dlq_list(self, topic: str, offset: int, limit: int) -> list[DeadLetter]:
        rows = self.db.execute(
            "SELECT body, error, due FROM jobs WHERE topic=? AND state=? "
            "ORDER BY due, id LIMIT ? OFFSET ?",
            (topic, DEAD, limit, offset),
        )
        return [DeadLetter(decode_job(body), error or "", due) for body, error, due in rows]

    async def dlq_count(self, topic: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE topic=? AND state=?", (topic, DEAD)
        ).fetchone()
        return int(row[0])

    def _dead(self, topic: str, ids: list[str] | None) -> list[tuple[str, bytes]]:
        if ids is None:
            return self.db.execute(
                "SELECT id, body FROM jobs WHERE topic=? AND state=?", (topic, DEAD)
            ).fetchall()
        out = []
        for job_id in ids:
            row = self.db.execute(
                "SELECT id, body FROM jobs WHERE id=? AND topic=? AND state=?",
                (job_id, topic, DEAD),
            ).fetchone()
            if row is not None:
                out.append(row)
        return out

    async def dlq_redrive(self, topic: str, ids: list[str] | None, now: int) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            count = 0
            for job_id, body in self._dead(topic, ids):
                job = decode_job(body)
                job.attempts = 0
                db.execute(
                    "UPDATE jobs SET state=?, due=?, body=?, error=NULL WHERE id=?",
                    (WAITING, now, job.encode(), job_id),
                )
                count += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return count

    async def dlq_discard(self, topic: str, ids: list[str] | None) -> int:
        if ids is None:
            return self.db.execute(
                "DELETE FROM jobs WHERE topic=? AND state=?", (topic, DEAD)
            ).rowcount
        return sum(
            self.db.execute(
                "DELETE FROM jobs WHERE id=? AND topic=? AND state=?", (job_id, topic, DEAD)
            ).rowcount
            for job_id in ids
        )

    async def counts(self, topic: str) -> dict[str, int]:
        out = {"waiting": 0, "active": 0, "dead": 0}
        names = {WAITING: "waiting", ACTIVE: "active", DEAD: "dead"}
        for state, n in self.db.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE topic=? GROUP BY state", (topic,)
        ):
            out[names[state]] = n
        return out
