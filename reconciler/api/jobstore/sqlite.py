"""The embedded job store: SQLite (WAL), one file on one host (`sqlite:///ABSOLUTE/FILE`).

Why SQLite: a job the API has answered 202 for must survive a crash, and one small file needs no
server. A job row is committed (synchronous=FULL) before `add` returns, so it is on disk
before the client hears of it. On `open`, jobs left `running` by a dead process go back to
`queued` and run again; the reconciler is idempotent, so running a job twice is safe, losing
it is not.

Ordering: the claim query itself picks the oldest queued job whose section has no running job,
so a section's jobs run one after another in arrival order for every worker of this process.
One process owns the file at a time (an flock on `<name>.lock` beside it), which is what makes
"running means a live worker is on it" true.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import Idempotency, Job, JobStoreBusy, JobStoreError, Status, check_finish

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    section_id   INTEGER NOT NULL,
    video        TEXT NOT NULL,
    languages    TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    result       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_section ON jobs (section_id, seq);
"""
# Columns added since the first schema: added to an existing file on open.
_ADDED_COLUMNS = {
    "idempotency_key": "TEXT",  # the client's Idempotency-Key header
    "request_digest": "TEXT",  # sha256 of the request it came with
    "delivery": "TEXT",  # JSON: the job-finished webhook's delivery record
    "replace_targets": "TEXT",  # JSON: the request's `replace` (`apply --replace` targets)
}
_ADDED_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (idempotency_key)",
)


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        seq=row["seq"],
        section_id=row["section_id"],
        video=row["video"],
        languages=tuple(json.loads(row["languages"])),
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        result=json.loads(row["result"]) if row["result"] else None,
        idempotency_key=row["idempotency_key"],
        request_digest=row["request_digest"],
        delivery=json.loads(row["delivery"]) if row["delivery"] else None,
        replace=tuple(json.loads(row["replace_targets"])) if row["replace_targets"] else (),
    )


class SqliteJobStore:
    """The jobs table. One connection guarded by a lock: every statement is short, and a single
    writer keeps SQLite's locking trivial."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite://{path}"
        self.lock_path = path.with_name(path.stem + ".lock")  # jobs.sqlite3 -> jobs.lock
        self._lock = threading.Lock()
        self._owner_fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # accepted means on disk
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
            have = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
            for index in _ADDED_INDEXES:
                self._db.execute(index)
        except (OSError, sqlite3.Error) as err:
            raise JobStoreError(f"job store {self.url}: {err}") from err

    def open(self) -> list[str]:
        """Own the file (an flock: one process at a time), then put the jobs a dead process left
        running back in the queue."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobStoreBusy(
                f"another server is running the jobs of {self.url} ({self.lock_path} is "
                "locked)") from None
        self._owner_fd = fd
        return self._requeue_interrupted()

    def release(self) -> None:
        if self._owner_fd is not None:
            os.close(self._owner_fd)  # releases the flock
            self._owner_fd = None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: read-then-write steps (claim) are atomic across processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, section_id: int, video: str, languages: list[str], *,
            notes: list[str] | None = None, idempotency: Idempotency | None = None,
            failure: dict[str, Any] | None = None, replace: tuple[str, ...] = ()) -> Job:
        """See JobStore.add. `notes` (problems met while accepting the job) start its result;
        the runner carries them on."""
        job_id = uuid.uuid4().hex
        now = time.time()
        if failure is not None:
            status, result, finished = Status.FAILED, json.dumps(failure), now
        else:
            status, result, finished = (
                Status.QUEUED, json.dumps({"errors": list(notes)}) if notes else None, None)
        key, digest = idempotency or (None, None)
        with self._tx() as db:
            prior = (db.execute("SELECT id FROM jobs WHERE idempotency_key = ?",
                                (key,)).fetchone() if key is not None else None)
            if prior is not None:
                job_id = prior["id"]
            else:
                db.execute(
                    "INSERT INTO jobs (id, section_id, video, languages, status, created_at, "
                    "finished_at, result, idempotency_key, request_digest, replace_targets) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, section_id, video, json.dumps(list(languages)), status, now,
                     finished, result, key, digest,
                     json.dumps(list(replace)) if replace else None),
                )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def by_idempotency_key(self, key: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?",
                                   (key,)).fetchone()
        return _row_to_job(row) if row else None

    def recent(self, section_id: int | None = None, status: str | None = None,
               limit: int = 100) -> list[Job]:
        """The newest `limit` jobs (of one section, in one status), newest first."""
        where, args = [], []
        if section_id is not None:
            where.append("section_id = ?")
            args.append(section_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs {clause}ORDER BY seq DESC LIMIT ?",
                                    (*args, limit)).fetchall()
        return [_row_to_job(r) for r in rows]

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job (atomically: a worker cannot claim it meanwhile); False when it
        is not queued."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
                (Status.CANCELLED, time.time(), job_id, Status.QUEUED)).rowcount
        return changed == 1

    def record_delivery(self, job_id: str, delivery: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET delivery = ? WHERE id = ?",
                       (json.dumps(delivery), job_id))

    def undelivered(self) -> list[Job]:
        """Finished jobs whose webhook delivery was pending when the process stopped."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE json_extract(delivery, '$.state') = 'pending' "
                "ORDER BY seq").fetchall()
        return [_row_to_job(r) for r in rows]

    def claim(self) -> Job | None:
        """Mark the oldest runnable job running and return it: queued, and no job of its
        section running (that is what keeps a section's jobs serial and in arrival order)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE status = ? AND section_id NOT IN "
                "(SELECT section_id FROM jobs WHERE status = ?) ORDER BY seq LIMIT 1",
                (Status.QUEUED, Status.RUNNING),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (Status.RUNNING, time.time(), row["id"]),
            )
        return self.get(row["id"])

    def finish(self, job_id: str, status: str, result: dict[str, Any]) -> None:
        check_finish(status)
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, result = ? "
                "WHERE id = ? AND status = ?",
                (status, time.time(), json.dumps(result), job_id, Status.RUNNING),
            )

    def _requeue_interrupted(self) -> list[str]:
        """Jobs left running by a process that died go back to the queue (keeping their place:
        seq, hence arrival order, is unchanged)."""
        with self._tx() as db:
            ids = [r["id"] for r in db.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY seq", (Status.RUNNING,))]
            db.execute("UPDATE jobs SET status = ?, started_at = NULL WHERE status = ?",
                       (Status.QUEUED, Status.RUNNING))
        return ids
