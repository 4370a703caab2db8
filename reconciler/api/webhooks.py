"""Job-finished callbacks: the web app is told when a job ends instead of polling.

`RECONCILER_WEBHOOK_URL` receives `POST` JSON {jobId, status, sectionId, languagesReady,
languagesFailed, masterUrl}, signed `X-Reconciler-Signature: sha256=<hex HMAC-SHA256 of the raw
body with RECONCILER_WEBHOOK_SECRET>` so the receiver can tell it from a forgery. A delivery is
retried with exponential backoff on connection errors, 429 and 5xx; every attempt's outcome is
recorded on the job (`delivery`). The record is written `pending` before the first attempt, so
a delivery a stopped process owed is made by the next one on the same job store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .allowlist import ApiConfigError
from .jobstore import Job, JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Reconciler-Signature"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Webhook:
    """Where and how job-finished callbacks go. `first_wait` doubles per retry up to
    `max_wait`; `attempts` in all."""

    url: str
    secret: str
    attempts: int = 6
    first_wait: float = 1.0
    max_wait: float = 60.0
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> Webhook | None:
        """RECONCILER_WEBHOOK_URL (+ the required RECONCILER_WEBHOOK_SECRET); None if unset."""
        url = os.environ.get("RECONCILER_WEBHOOK_URL", "").strip()
        if not url:
            return None
        if not url.startswith(("https://", "http://")):
            raise ApiConfigError("RECONCILER_WEBHOOK_URL must be an http(s):// URL")
        secret = os.environ.get("RECONCILER_WEBHOOK_SECRET", "")
        if not secret:
            raise ApiConfigError("RECONCILER_WEBHOOK_URL is set but RECONCILER_WEBHOOK_SECRET "
                                 "is not: callbacks are always signed")
        return cls(url, secret)


def signature(secret: str, body: bytes) -> str:
    """The value of X-Reconciler-Signature for this raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _Retryable(Exception):
    """An answer worth another attempt (429, 5xx)."""


def _worth_retrying(err: BaseException) -> bool:
    return isinstance(err, _Retryable | httpx.TransportError)


class Notifier:
    """Delivers job-finished callbacks on its own threads (a slow receiver never holds a job
    worker) and records each delivery on the job."""

    def __init__(self, webhook: Webhook, store: JobStore,
                 payload_of: Callable[[Job], dict[str, Any]]) -> None:
        self.webhook = webhook
        self.store = store
        self.payload_of = payload_of
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconciler-webhook")

    def notify(self, job: Job) -> None:
        """Record the delivery as pending (durably), then deliver in the background."""
        self.store.record_delivery(job.id, {"state": PENDING, "attempts": 0})
        self._pool.submit(self._deliver, job.id)

    def resume(self) -> None:
        """Deliver what a stopped process still owed."""
        for job in self.store.undelivered():
            self._pool.submit(self._deliver, job.id)

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _deliver(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None:
            return
        body = json.dumps(self.payload_of(job), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature(self.webhook.secret, body)}
        record: dict[str, Any] = {"state": PENDING, "attempts": 0}
        retrying = Retrying(
            stop=stop_after_attempt(self.webhook.attempts),
            wait=wait_exponential(multiplier=self.webhook.first_wait,
                                  max=self.webhook.max_wait),
            retry=retry_if_exception(_worth_retrying), reraise=True)
        try:
            with httpx.Client(timeout=self.webhook.timeout, follow_redirects=False) as client:
                for attempt in retrying:
                    with attempt:
                        record["attempts"] += 1
                        try:
                            self._post(client, body, headers, record)
                        finally:
                            self.store.record_delivery(job_id, record)
        except (_Retryable, httpx.HTTPError) as err:
            record.update(state=FAILED, error=record.get("error") or type(err).__name__)
            self.store.record_delivery(job_id, record)
            log.error("job %s: webhook not delivered after %d attempt(s): %s", job_id,
                      record["attempts"], record["error"])
            return
        log.info("job %s: webhook delivered", job_id)

    def _post(self, client: httpx.Client, body: bytes, headers: dict[str, str],
              record: dict[str, Any]) -> None:
        """One attempt; the record says how it went (never the URL's secrets or the body)."""
        try:
            answer = client.post(self.webhook.url, content=body, headers=headers)
        except httpx.TransportError as err:
            record.update(error=f"{type(err).__name__} connecting to the receiver",
                          httpStatus=None)
            raise
        record["httpStatus"] = answer.status_code
        if answer.status_code == 429 or answer.status_code >= 500:
            record["error"] = f"HTTP {answer.status_code}"
            raise _Retryable(record["error"])
        if answer.status_code >= 300:
            record["error"] = f"HTTP {answer.status_code}"
            raise httpx.HTTPStatusError(record["error"], request=answer.request,
                                        response=answer)
        record.update(state=DELIVERED, error=None,
                      deliveredAt=datetime.now(UTC).isoformat(timespec="seconds"))
