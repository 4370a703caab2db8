"""Jobs as objects in the bucket the reconciler already trusts (`s3://BUCKET/PREFIX`), so any
number of API replicas share them: any replica answers any job, and a replica that dies
mid-job has that job resumed by another once its lease lapses.

Layout under PREFIX (written through the object-store seam, reconciler/store):

    jobs/{id}.json         one job (JSON); the id starts with its creation time in hex, so
                           listing order is arrival order
    idempotency/{h}.json   h = sha256 of an Idempotency-Key: the job it names, written once
    running/{section}.json the section's run lease: who runs its current job, until when

Every change is a conditional write: a job is created with If-None-Match: * and changed with
If-Match on the ETag it was read with, so of two replicas claiming or cancelling one job exactly
one wins, and the loser re-reads. A section's run lease follows the apply's section lock
(lock.SectionLock at another key): created with If-None-Match, renewed with If-Match every
lease/3 while the job runs, taken over only once it expired, released when the job ends. A job
is claimed only by the holder of its section's lease, and only when it is the section's oldest
unfinished job, which keeps a section's jobs one at a time in arrival order.

Reads cache each job by the ETag its last LIST showed: a LIST and a GET of only what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ...engine import (
    LockError,
    PreconditionFailed,
    SectionLock,
    Store,
    StoreError,
    open_store,
)
from ...errors import UsageError
from ...layout import ObjectMeta
from . import Idempotency, Job, JobStoreError, Status, check_finish

log = logging.getLogger(__name__)

JOB_META = ObjectMeta("application/json", "no-store")
JOBS = "jobs/"
_ID = re.compile(r"^[0-9a-f]{32}$")
# Conditional writes that lose a race re-read and try again; this many losses in a row means
# something keeps rewriting the object, which is a bug, not contention.
MAX_RACES = 50


def job_key(job_id: str) -> str:
    return f"{JOBS}{job_id}.json"


def idempotency_key(key: str) -> str:
    return f"idempotency/{hashlib.sha256(key.encode()).hexdigest()}.json"


def lease_key(section_id: int) -> str:
    return f"running/{section_id}.json"


def new_id(ns: int) -> str:
    """32 hex digits: creation time in nanoseconds, then randomness (sorts by arrival)."""
    return f"{ns:016x}{secrets.token_hex(8)}"


def encode(job: Job, run: str | None) -> bytes:
    """A job's object: the Job's fields and `run`, the lease id of the run that holds it."""
    return json.dumps({**dataclasses.asdict(job), "run": run}, sort_keys=True).encode()


def decode(body: bytes) -> tuple[Job, str | None]:
    doc = json.loads(body)
    run = doc.pop("run", None)
    doc["languages"] = tuple(doc["languages"])
    doc["replace"] = tuple(doc.get("replace", ()))
    return Job(**doc), run


@dataclasses.dataclass(frozen=True)
class Stored:
    """A job as last read, with the ETag a conditional write must match."""

    job: Job
    run: str | None
    etag: str


class ObjectJobStore:
    """The job store over an object store (see the module docstring)."""

    def __init__(self, store: Store, *, lease: float, clock: Callable[[], float] = time.time
                 ) -> None:
        self.store = store
        self.url = store.url
        self.lease = lease
        self.clock = clock
        self._cache: dict[str, Stored] = {}  # key -> the job as the last LIST's ETag showed
        self._cache_guard = threading.Lock()
        self._runs: dict[str, SectionLock] = {}  # job id -> the section lease this process holds
        self._runs_guard = threading.Lock()
        self._last_ns = 0  # the time of this replica's newest id: ids it makes only grow
        self._ids_guard = threading.Lock()

    @classmethod
    def at(cls, url: str, *, lease: float) -> ObjectJobStore:
        """Open the store at `url` and read it once, so a wrong bucket fails now, naming it."""
        try:
            jobs = cls(open_store(url), lease=lease)
            jobs.store.list(JOBS)
        except (UsageError, StoreError) as err:
            raise JobStoreError(f"job store {url}: {err}") from err
        return jobs

    # -- reading ---------------------------------------------------------------------------

    def _read(self, job_id: str) -> Stored | None:
        if not _ID.match(job_id):
            return None
        got = self.store.get(job_key(job_id))
        if got is None:
            return None
        job, run = decode(got[0])
        return Stored(job, run, got[1].etag)

    def scan(self) -> list[Stored]:
        """Every job, oldest first: one LIST, and a GET of each object whose ETag changed."""
        listed = self.store.list(JOBS)
        with self._cache_guard:
            known = dict(self._cache)
        fresh: dict[str, Stored] = {}
        for key, info in listed.items():
            cached = known.get(key)
            if cached is not None and cached.etag == info.etag:
                fresh[key] = cached
                continue
            got = self.store.get(key)
            if got is not None:  # deleted since the LIST: gone
                job, run = decode(got[0])
                fresh[key] = Stored(job, run, got[1].etag)
        with self._cache_guard:
            self._cache = fresh
        return sorted(fresh.values(), key=lambda stored: (stored.job.seq, stored.job.id))

    def get(self, job_id: str) -> Job | None:
        stored = self._read(job_id)
        return stored.job if stored else None

    def by_idempotency_key(self, key: str) -> Job | None:
        got = self.store.get(idempotency_key(key))
        if got is None:
            return None
        return self._complete(decode(got[0])[0])

    def recent(self, section_id: int | None = None, status: str | None = None,
               limit: int = 100) -> list[Job]:
        jobs = [s.job for s in reversed(self.scan())
                if (section_id is None or s.job.section_id == section_id)
                and (status is None or s.job.status == status)]
        return jobs[:limit]

    def undelivered(self) -> list[Job]:
        return [s.job for s in self.scan()
                if s.job.delivery and s.job.delivery.get("state") == "pending"]

    # -- writing ---------------------------------------------------------------------------

    def open(self) -> list[str]:
        return []  # nothing to own: a dead replica's jobs are claimable once their lease lapses

    def release(self) -> None:
        """Nothing to give back: a lease still held belongs to a job still running."""

    def add(self, section_id: int, video: str, languages: list[str], *,
            notes: list[str] | None = None, idempotency: Idempotency | None = None,
            failure: dict[str, Any] | None = None, replace: tuple[str, ...] = ()) -> Job:
        """See JobStore.add. With a key, the job is first written into the key's object
        (If-None-Match): the replica whose write lands owns the key; any later add with the key,
        on any replica, returns that job (and completes it, if its writer died before writing
        the job's own object)."""
        now = self.clock()
        with self._ids_guard:  # two adds in one clock tick still sort in arrival order
            self._last_ns = max(int(now * 1e9), self._last_ns + 1)
            job_id = new_id(self._last_ns)
        key, digest = idempotency or (None, None)
        job = Job(id=job_id, seq=int(job_id[:16], 16), section_id=section_id, video=video,
                  languages=tuple(languages), status=Status.FAILED if failure else Status.QUEUED,
                  created_at=now, started_at=None, finished_at=now if failure else None,
                  attempts=0, result=failure or ({"errors": list(notes)} if notes else None),
                  idempotency_key=key, request_digest=digest, replace=tuple(replace))
        if key is not None:
            try:
                self.store.put_bytes(idempotency_key(key), encode(job, None), JOB_META,
                                     if_none_match=True)
            except PreconditionFailed:
                prior = self.by_idempotency_key(key)
                if prior is None:
                    raise JobStoreError(f"job store {self.url}: Idempotency-Key record "
                                        "vanished (deleted by hand?)") from None
                return prior
        return self._complete(job)

    def _complete(self, job: Job) -> Job:
        """The job's own object, written now unless it exists (then: as stored)."""
        try:
            self.store.put_bytes(job_key(job.id), encode(job, None), JOB_META,
                                 if_none_match=True)
        except PreconditionFailed:
            stored = self._read(job.id)
            if stored is not None:
                return stored.job
            raise
        return job

    def _change(self, job_id: str, change: Callable[[Stored], Stored | None]) -> Stored | None:
        """Read the job, let `change` say what it becomes (None: leave it), write that with
        If-Match; re-read and re-decide when another writer got there first. Returns what was
        written, or None."""
        for _ in range(MAX_RACES):
            stored = self._read(job_id)
            if stored is None:
                return None
            changed = change(stored)
            if changed is None:
                return None
            try:
                etag = self.store.put_bytes(job_key(job_id), encode(changed.job, changed.run),
                                            JOB_META, if_match=stored.etag)
            except PreconditionFailed:
                continue
            return dataclasses.replace(changed, etag=etag)
        raise JobStoreError(f"job store {self.url}: job {job_id} kept changing under "
                            f"{MAX_RACES} attempts to update it")

    def cancel(self, job_id: str) -> bool:
        def cancelled(stored: Stored) -> Stored | None:
            if stored.job.status != Status.QUEUED:
                return None
            return dataclasses.replace(stored, job=dataclasses.replace(
                stored.job, status=Status.CANCELLED, finished_at=self.clock()))

        return self._change(job_id, cancelled) is not None

    def record_delivery(self, job_id: str, delivery: dict[str, Any]) -> None:
        self._change(job_id, lambda stored: dataclasses.replace(
            stored, job=dataclasses.replace(stored.job, delivery=dict(delivery))))

    # -- running ---------------------------------------------------------------------------

    def claim(self) -> Job | None:
        """For each section with unfinished jobs (oldest first): take the section's run lease
        (a live one held elsewhere means its job is running: skip the section), then mark the
        section's oldest unfinished job running under it. A job found running under an expired
        lease is a dead replica's: it runs again here (attempts + 1)."""
        seen: set[int] = set()
        for stored in self.scan():
            sid = stored.job.section_id
            if stored.job.finished or sid in seen:
                continue
            seen.add(sid)
            lease = SectionLock(self.store, sid, key=lease_key(sid), ttl=self.lease, timeout=0,
                                operation="api job", clock=self.clock)
            try:
                lease.acquire()
            except LockError:
                continue  # its job runs on a live replica
            job = self._start(sid, lease)
            if job is not None:
                return job
            lease.release()
        return None

    def _start(self, section_id: int, lease: SectionLock) -> Job | None:
        """Under the section's lease: its oldest unfinished job, marked running by this run."""
        run = lease.lease.lock_id
        for _ in range(MAX_RACES):
            oldest = next((s for s in self.scan()
                           if s.job.section_id == section_id and not s.job.finished), None)
            if oldest is None:
                return None
            if oldest.job.status == Status.RUNNING:
                log.warning("job %s: its replica's lease lapsed; running it again", oldest.job.id)

            def started(stored: Stored, oldest: Stored = oldest) -> Stored | None:
                if stored.etag != oldest.etag:
                    return None  # changed since the scan (cancelled, say): look again
                return Stored(dataclasses.replace(
                    stored.job, status=Status.RUNNING, started_at=self.clock(),
                    attempts=stored.job.attempts + 1), run, stored.etag)

            claimed = self._change(oldest.job.id, started)
            if claimed is not None:
                with self._runs_guard:
                    self._runs[claimed.job.id] = lease
                return claimed.job
        raise JobStoreError(f"job store {self.url}: section {section_id}'s jobs kept changing "
                            f"under {MAX_RACES} attempts to claim one")

    def finish(self, job_id: str, status: str, result: dict[str, Any]) -> None:
        check_finish(status)
        with self._runs_guard:
            lease = self._runs.pop(job_id, None)
        if lease is None:
            raise JobStoreError(f"job store {self.url}: job {job_id} was not claimed here")
        run = lease.lease.lock_id

        def finished(stored: Stored) -> Stored | None:
            if stored.run != run or stored.job.status != Status.RUNNING:
                return None
            return Stored(dataclasses.replace(stored.job, status=status,
                                              finished_at=self.clock(), result=result),
                          None, stored.etag)

        try:
            if self._change(job_id, finished) is None:
                log.warning("job %s: another replica took it over (this one's lease lapsed); "
                            "its result stands, not this one", job_id)
        finally:
            lease.release()
