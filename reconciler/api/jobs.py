"""The API's job queue: worker threads running the jobs of a job store (jobstore/).

Ordering and exclusivity are the store's (its claim picks a section's oldest unfinished job and
gives one run to one worker, across processes); the queue only runs what it is handed, reports
the outcome and wakes idle workers when this process adds or ends a job. Jobs other replicas
add are found by polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .jobstore import Idempotency, Job, JobStore, Status

log = logging.getLogger(__name__)

Runner = Callable[[Job], tuple[str, dict[str, Any]]]


class JobQueue:
    """Worker threads that run the jobs of a JobStore through `runner`.

    `runner(job)` returns (succeeded|failed, result); an exception fails the job with a generic
    reason after the notes it was accepted with (the traceback goes to the log, never to a
    client). `workers=0` accepts jobs without running them: they stay queued for the next
    server (or another replica) on this job store. Idle workers look for work every `poll`
    seconds (other replicas' jobs) and at once when this process adds or ends one.
    """

    def __init__(self, store: JobStore, runner: Runner, *, workers: int = 2,
                 poll: float = 1.0,
                 on_finish: Callable[[Job], None] | None = None) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.store = store
        self.runner = runner
        self.on_finish = on_finish  # told of every job that ends (run or cancelled)
        self.workers = workers
        self.poll = poll
        self._cv = threading.Condition()
        self._generation = 0  # bumped on every submit/finish; wakes idle workers
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Open the store for running (interrupted jobs back in the queue), start the workers."""
        resumed = self.store.open()
        if resumed:
            log.warning("resuming %d interrupted job(s): %s", len(resumed), ", ".join(resumed))
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"reconciler-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; wait for the ones running. A job still running after `timeout`
        keeps the store held until this process exits (so no other server can run it twice
        meanwhile)."""
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
        else:
            self.store.release()
        self._threads = []

    def submit(self, section_id: int, video: str, languages: list[str],
               notes: list[str] | None = None, idempotency: Idempotency | None = None,
               replace: tuple[str, ...] = ()) -> Job:
        """Persist a job (durable on return), then wake a worker."""
        job = self.store.add(section_id, video, languages, notes=notes, idempotency=idempotency,
                             replace=replace)
        self._poke()
        return job

    def record_failed(self, section_id: int, video: str, languages: list[str], reason: str,
                      idempotency: Idempotency | None = None) -> Job:
        """Store a request that failed before it could run (its manifest change could not be
        published): the client learns why from the job, like any other failure."""
        job = self.store.add(section_id, video, languages, idempotency=idempotency, failure={
            "ok": False, "languagesReady": [], "errors": [reason],
            "languagesFailed": [{"code": code, "reason": reason} for code in languages]})
        self._ended(job.id)
        return job

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
                    if self._generation == seen and not self._stopping:
                        self._cv.wait(self.poll)
                continue
            log.info("job %s: section %d started (%s)", job.id, job.section_id,
                     ", ".join(job.languages))
            try:
                status, result = self.runner(job)
            except Exception:  # a bug must fail the job, not kill the worker
                log.exception("job %s crashed", job.id)
                notes = (job.result or {}).get("errors", [])  # met on acceptance: kept
                status, result = Status.FAILED, {
                    "errors": [*notes, "internal error (see the server log)"]}
            self.store.finish(job.id, status, result)
            log.info("job %s: section %d %s", job.id, job.section_id, status)
            self._ended(job.id)
            self._poke()
