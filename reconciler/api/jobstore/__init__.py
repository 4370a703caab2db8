"""The API's job store: one small interface, two implementations, chosen by URL.

    sqlite:///ABSOLUTE/FILE   sqlite.py: one file on one host (the embedded default, in
                              --data-dir); one server process owns it at a time
    s3://BUCKET/PREFIX        objects.py: job objects in a bucket, shared by any number of
                              replicas; claims are conditional writes, a running job holds a
                              per-section lease like the apply's section lock

Not `file:///DIR`: the local store serializes conditional writes, but a read racing a write may
pair the new ETag with the old body, which a shared job store cannot afford.

Every implementation keeps the same promises, which tests/test_jobstore.py checks against each:
a job is durable when `add` returns; an Idempotency-Key names one job, however many replicas
race to add it; a section's jobs run one at a time, oldest first; a job is claimed by exactly
one worker; a queued job is cancelled atomically (no worker can claim it meanwhile); a job left
running by a process that died runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ...errors import ReconcilerError


class Status(StrEnum):
    """Where a job is: queued, running, then finished (one of FINISHED). A Job's `status` is
    the stored text, which equals its member."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
# Seconds a replica's hold on a running job lasts without renewal: the section lock's default.
DEFAULT_LEASE = 300.0
JOB_STORE_FORMS = "sqlite:///ABSOLUTE/FILE or s3://BUCKET/PREFIX"

Idempotency = tuple[str, str]  # (the client's Idempotency-Key, the request's digest)


class JobStoreError(ReconcilerError):
    """The job store cannot be opened or read; the message names its URL."""


class JobStoreBusy(JobStoreError):
    """Another live process already runs the jobs of this single-host job store."""


@dataclass(frozen=True)
class Job:
    """One accepted request: reconcile `section_id` so that `languages` are served.
    `seq` orders jobs by arrival (a section's jobs run in this order)."""

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


class JobStore(Protocol):
    """Durable jobs as the API's queue uses them. Thread-safe."""

    url: str

    def open(self) -> list[str]:
        """Start running this store's jobs from this process; returns the ids of jobs a dead
        process left running that go back to the queue now (an object store resumes them as
        their leases lapse instead, so it returns none). JobStoreBusy when another live process
        owns a single-host store."""

    def release(self) -> None:
        """Stop running jobs from this process (what `open` took is given back)."""

    def add(self, section_id: int, video: str, languages: list[str], *,
            notes: list[str] | None = None, idempotency: Idempotency | None = None,
            failure: dict[str, Any] | None = None, replace: tuple[str, ...] = ()) -> Job:
        """Persist a new job, durable on return: queued, its result starting as
        {"errors": notes}; or, with `failure`, already failed with that result. `replace`:
        renditions the job rebuilds although up to date (`apply --replace`). With an
        `idempotency` key already stored, nothing is added and the job stored under the key is
        returned (whatever its digest: the caller compares)."""

    def get(self, job_id: str) -> Job | None:
        """The job now, or None (also for an id of the wrong shape)."""

    def by_idempotency_key(self, key: str) -> Job | None:
        """The job added with this Idempotency-Key, or None."""

    def recent(self, section_id: int | None = None, status: str | None = None,
               limit: int = 100) -> list[Job]:
        """The newest `limit` jobs (of one section, in one status), newest first."""

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job atomically; False when it is not queued."""

    def claim(self) -> Job | None:
        """Mark the oldest runnable job running and return it: the oldest unfinished job of a
        section none of whose jobs is running (a dead process's running job is runnable again
        once its hold lapsed). Exactly one caller, across processes, gets a given run."""

    def finish(self, job_id: str, status: str, result: dict[str, Any]) -> None:
        """End a job this process claimed (succeeded or failed) and let its section's next job
        run. A job another process took over meanwhile is left to that process."""

    def record_delivery(self, job_id: str, delivery: dict[str, Any]) -> None:
        """Record the job-finished callback's delivery on the job."""

    def undelivered(self) -> list[Job]:
        """Finished jobs whose callback delivery is still pending."""


def check_finish(status: str) -> None:
    """A job finishes succeeded or failed (cancelling is `cancel`'s)."""
    if status not in (Status.SUCCEEDED, Status.FAILED):
        raise ValueError(f"a job finishes {Status.SUCCEEDED} or {Status.FAILED}, not {status}")


def default_url(data_dir: Path) -> str:
    """The embedded default: a SQLite file in the server's data directory."""
    return f"sqlite://{(data_dir / 'jobs.sqlite3').resolve()}"


def open_job_store(url: str, *, lease: float = DEFAULT_LEASE) -> JobStore:
    """Open `sqlite:///ABSOLUTE/FILE` or `s3://BUCKET/PREFIX` (scheme in any case). Anything
    else is a JobStoreError naming the URL and the accepted forms. `lease`: seconds a replica's
    hold on a running job lasts unrenewed (S3)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "sqlite" and rest.startswith("/") and not rest.endswith("/"):
        from .sqlite import SqliteJobStore

        return SqliteJobStore(Path(rest))
    if scheme == "s3" and rest.partition("/")[2].strip("/"):
        from .objects import ObjectJobStore

        return ObjectJobStore.at(url, lease=lease)
    raise JobStoreError(f"job store URL {url!r} is not a job store: expected {JOB_STORE_FORMS} "
                        "(an object store's jobs need a PREFIX of their own)")
