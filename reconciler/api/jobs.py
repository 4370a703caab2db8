"""A durable job queue for the HTTP API: SQLite (WAL) in a data directory.

Why SQLite: a job the API has answered 202 for must survive a crash, and one small file needs no
server. A job row is committed (synchronous=FULL) before `submit` returns, so it is on disk
before the client hears of it. On start, jobs left `running` by a dead process go back to
`queued` and run again; the reconciler is idempotent, so running a job twice is safe, losing
it is not.

Ordering: jobs of one section run strictly one after another, in arrival order; different
sections run in parallel on a bounded number of worker threads. Both rules are enforced by the
claim query itself (the oldest queued job whose section has no running job), so they hold for
every worker of this process. One process owns a data directory at a time (an flock), which is
what makes "running means a live worker is on it" true.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReconcilerError

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued", "running", "succeeded", "failed", "cancelled")
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
STATUSES = (QUEUED, RUNNING, *FINISHED)

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


class DataDirBusy(ReconcilerError):
    """Another live process already runs the jobs of this data directory."""


@dataclass(frozen=True)
class Job:
    """One accepted request: reconcile `section_id` so that `languages` are served."""

    id: str
    seq: int
    section_id: int
    video: str
    languages: tuple[str, ...]
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    result: dict[str, Any] | None
    idempotency_key: str | None = None
    request_digest: str | None = None
    delivery: dict[str, Any] | None = None
    replace: tuple[str, ...] = ()  # "11/ja", "11/video": rebuilt although up to date

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


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


class JobStore:
    """The jobs table. One connection guarded by a lock: every statement is short, and a single
    writer keeps SQLite's locking trivial."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
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

    def add(self, section_id: int, video: str, languages: list[str],
            notes: list[str] | None = None, idempotency: Idempotency | None = None,
            replace: tuple[str, ...] = ()) -> Job:
        """Persist a new queued job; it is durable when this returns. `notes` (problems met
        while accepting it) start its result as {"errors": notes}; the runner carries them on.
        `idempotency`: the client's key and the request's digest (a key is stored once);
        `replace`: renditions the job rebuilds although up to date."""
        job_id = uuid.uuid4().hex
        result = json.dumps({"errors": list(notes)}) if notes else None
        key, digest = idempotency or (None, None)
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (id, section_id, video, languages, status, created_at, result, "
                "idempotency_key, request_digest, replace_targets) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, section_id, video, json.dumps(list(languages)), QUEUED, time.time(),
                 result, key, digest, json.dumps(list(replace)) if replace else None),
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
                (CANCELLED, time.time(), job_id, QUEUED)).rowcount
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
                (QUEUED, RUNNING),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (RUNNING, time.time(), row["id"]),
            )
        return self.get(row["id"])

    def finish(self, job_id: str, status: str, result: dict[str, Any]) -> None:
        if status not in (SUCCEEDED, FAILED):
            raise ValueError(f"a job finishes {SUCCEEDED} or {FAILED}, not {status}")
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, result = ? WHERE id = ?",
                (status, time.time(), json.dumps(result), job_id),
            )

    def requeue_interrupted(self) -> list[str]:
        """Jobs left running by a process that died go back to the queue (keeping their place:
        seq, hence arrival order, is unchanged)."""
        with self._tx() as db:
            ids = [r["id"] for r in db.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY seq", (RUNNING,))]
            db.execute("UPDATE jobs SET status = ?, started_at = NULL WHERE status = ?",
                       (QUEUED, RUNNING))
        return ids


Runner = Callable[[Job], tuple[str, dict[str, Any]]]
Idempotency = tuple[str, str]  # (the client's Idempotency-Key, the request's digest)


class JobQueue:
    """Worker threads that run the jobs of a JobStore through `runner`.

    `runner(job)` returns (succeeded|failed, result); an exception fails the job with a generic
    reason after the notes it was accepted with (the traceback goes to the log, never to a
    client). `workers=0` accepts jobs without
    running them: they stay queued for the next server on this data directory.
    """

    def __init__(self, store: JobStore, runner: Runner, *, workers: int = 2,
                 data_dir: Path | None = None,
                 on_finish: Callable[[Job], None] | None = None) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.store = store
        self.runner = runner
        self.on_finish = on_finish  # told of every job that ends (run or cancelled)
        self.workers = workers
        self.lock_path = (data_dir or store.path.parent) / "jobs.lock"
        self._cv = threading.Condition()
        self._generation = 0  # bumped on every submit/finish; wakes idle workers
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._lock_fd: int | None = None

    def start(self) -> None:
        """Own the data directory, put interrupted jobs back in the queue, start the workers."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(
                f"another server is running the jobs in {self.lock_path.parent}") from None
        self._lock_fd = fd
        resumed = self.store.requeue_interrupted()
        if resumed:
            log.warning("resuming %d interrupted job(s): %s", len(resumed), ", ".join(resumed))
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"reconciler-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; wait for the ones running. A job still running after `timeout`
        keeps the data directory locked until this process exits (so no other server can run
        it twice meanwhile)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("jobs still running at shutdown (%s); they resume on restart",
                        ", ".join(alive))
        elif self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._threads = []

    def submit(self, section_id: int, video: str, languages: list[str],
               notes: list[str] | None = None, idempotency: Idempotency | None = None,
               replace: tuple[str, ...] = ()) -> Job:
        """Persist a job (durable on return), then wake a worker."""
        job = self.store.add(section_id, video, languages, notes, idempotency, replace)
        self._poke()
        return job

    def record_failed(self, section_id: int, video: str, languages: list[str], reason: str,
                      idempotency: Idempotency | None = None) -> Job:
        """Store a request that failed before it could run (its manifest change could not be
        published): the client learns why from the job, like any other failure."""
        job = self.store.add(section_id, video, languages, idempotency=idempotency)
        self.store.finish(job.id, FAILED, {
            "ok": False, "languagesReady": [], "errors": [reason],
            "languagesFailed": [{"code": code, "reason": reason} for code in languages]})
        self._ended(job.id)
        done = self.store.get(job.id)
        assert done is not None
        return done

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job; False when it is not (or no longer) queued."""
        if not self.store.cancel(job_id):
            return False
        self._ended(job_id)
        return True

    def _ended(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if self.on_finish is None or job is None:
            return
        try:
            self.on_finish(job)
        except Exception:  # a bug in the hook must not kill the worker
            log.exception("job %s: the job-finished hook failed", job_id)

    def _poke(self) -> None:
        with self._cv:
            self._generation += 1
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                if self._stopping:
                    return
                seen = self._generation
            job = self.store.claim()
            if job is None:
                with self._cv:
                    while self._generation == seen and not self._stopping:
                        self._cv.wait(1.0)
                continue
            log.info("job %s: section %d started (%s)", job.id, job.section_id,
                     ", ".join(job.languages))
            try:
                status, result = self.runner(job)
            except Exception:  # a bug must fail the job, not kill the worker
                log.exception("job %s crashed", job.id)
                notes = (job.result or {}).get("errors", [])  # met on acceptance: kept
                status, result = FAILED, {
                    "errors": [*notes, "internal error (see the server log)"]}
            self.store.finish(job.id, status, result)
            log.info("job %s: section %d %s", job.id, job.section_id, status)
            self._ended(job.id)
            self._poke()
