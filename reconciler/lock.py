"""Per-section lease in the bucket: one apply per section at a time, across processes and
machines (Terraform's S3 lockfile, plus the expiry it lacks).

The lease is created with a conditional write (If-None-Match: *), renewed with If-Match on its
own ETag while the apply works, taken over only after it expired, and released at the end.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import ReconcilerError
from .layout import ObjectMeta, lock_key
from .store import PreconditionFailed, Store, StoreError

LOCK_META = ObjectMeta("application/json", "no-store")


class LockError(ReconcilerError):
    """The lock could not be taken (timeout, naming the holder) or was lost."""


def owner() -> dict[str, str]:
    """Who holds a lease: host, pid and, in GitHub Actions, the run's URL."""
    me = {"host": socket.gethostname(), "pid": str(os.getpid())}
    if os.environ.get("GITHUB_RUN_ID"):
        me["run"] = (f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                     f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/"
                     f"{os.environ['GITHUB_RUN_ID']}")
    return me


@dataclass
class Lease:
    lock_id: str
    owner: dict[str, str]
    operation: str
    created: float
    expires: float

    def describe(self, now: float) -> str:
        who = ", ".join(f"{k} {v}" for k, v in self.owner.items())
        left = self.expires - now
        when = f"expires in {left:.0f}s" if left > 0 else f"expired {-left:.0f}s ago"
        return f"lock {self.lock_id} held by {who} for {self.operation!r} ({when})"

    def body(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()


def read_lease(store: Store, section_id: int) -> tuple[Lease, str] | None:
    return read_lease_at(store, lock_key(section_id))


def read_lease_at(store: Store, key: str) -> tuple[Lease, str] | None:
    """The lease stored at `key` and its ETag, or None when there is none."""
    got = store.get(key)
    if got is None:
        return None
    try:
        return Lease(**json.loads(got[0])), got[1].etag
    except (TypeError, ValueError):  # unreadable lease: treat as expired long ago
        return Lease("unreadable", {}, "?", 0, 0), got[1].etag


class SectionLock:
    """Context manager holding one section's lease; renews it in the background. `key`: where
    the lease lives (the section's apply lock by default; the API's job store keeps its own
    per-section run lease elsewhere, with the same discipline)."""

    def __init__(self, store: Store, section_id: int, *, ttl: float = 300,
                 timeout: float = 600, operation: str = "apply", poll: float = 1.0,
                 clock=time.time, sleep=time.sleep, key: str | None = None) -> None:
        self.store = store
        self.section_id = section_id
        self.key = key or lock_key(section_id)
        self.ttl = ttl
        self.timeout = timeout
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self.lease = Lease(uuid.uuid4().hex[:16], owner(), operation, now, now + ttl)
        self.etag: str | None = None
        self.confirmed_until = 0.0  # expiry of the last lease the store accepted from us
        self.renew_error: str | None = None
        self.lost: str | None = None
        self.release_error: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._guard = threading.Lock()

    def acquire(self) -> None:
        deadline = self.clock() + self.timeout
        while True:
            now = self.clock()
            self.lease.created, self.lease.expires = now, now + self.ttl
            try:
                self.etag = self.store.put_bytes(self.key, self.lease.body(), LOCK_META,
                                                 if_none_match=True)
                self.confirmed_until = self.lease.expires
                break
            except PreconditionFailed:
                pass
            held = read_lease_at(self.store, self.key)
            if held is not None and held[0].lock_id == self.lease.lock_id:
                self.etag = held[1]  # our write landed; only its answer was lost
                self.confirmed_until = held[0].expires
                break
            if held is not None and held[0].expires < now:
                try:  # take over an expired lease, but only the one we just read
                    self.etag = self.store.put_bytes(self.key, self.lease.body(), LOCK_META,
                                                     if_match=held[1])
                    self.confirmed_until = self.lease.expires
                    break
                except PreconditionFailed:
                    continue
            if self.clock() >= deadline:
                holder = held[0].describe(now) if held else "another run"
                raise LockError(f"section {self.section_id} is locked: {holder}; waited "
                                f"{self.timeout:g}s (reconcile unlock {self.section_id} "
                                f"--lock-id ID removes a lock left behind)")
            self.sleep(self.poll)
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                         name=f"lock-{self.section_id}")
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew()

    def renew(self) -> None:
        with self._guard:
            if self.lost or self.etag is None:
                return
            self.lease.expires = self.clock() + self.ttl
            try:
                self.etag = self.store.put_bytes(self.key, self.lease.body(), LOCK_META,
                                                 if_match=self.etag)
                self.confirmed_until, self.renew_error = self.lease.expires, None
            except PreconditionFailed:
                try:
                    held = read_lease_at(self.store, self.key)
                except StoreError as err:
                    self.renew_error = str(err)  # unknown: the next renewal looks again
                    return
                if held is not None and held[0].lock_id == self.lease.lock_id:
                    self.etag = held[1]  # our renewal landed; only its answer was lost
                    self.confirmed_until, self.renew_error = held[0].expires, None
                else:
                    self.lost = (f"lock on section {self.section_id} was taken over or removed "
                                 "by another run; stopped writing that section")
            except StoreError as err:
                self.renew_error = str(err)  # the next renewal tries again; guard() decides

    def guard(self) -> None:
        """Called before every write of the section: raises StoreError once the lease was lost,
        or when renewals have failed for so long that the lease the store holds could lapse
        within ttl/3 (a write started now must finish while the lease still stands). Lock-free:
        writers never wait for a renewal in flight."""
        if self.lost is None and self.clock() >= self.confirmed_until - self.ttl / 3:
            self.lost = (
                f"lock on section {self.section_id} could not be renewed "
                f"({self.renew_error or 'no renewal'}); stopped writing that section before "
                f"its lease lapses at {_utc(self.confirmed_until)}")
        if self.lost:
            raise StoreError(self.lost)

    def release(self) -> None:
        """Best effort: a lease that cannot be removed simply expires; `release_error` says so."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        with self._guard:
            try:
                held = read_lease_at(self.store, self.key)
                if held is not None and held[0].lock_id == self.lease.lock_id:
                    self.store.delete([self.key])
            except StoreError as err:
                self.release_error = (f"lock on section {self.section_id} not released ({err}); "
                                      f"it expires within {self.ttl:g}s")
            self.etag = None

    def __enter__(self) -> SectionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def unlock(store: Store, section_id: int, lock_id: str, *, force: bool = False,
           now: float | None = None) -> Lease:
    """Remove a lock left behind, only if its id is the one given (as `terraform force-unlock`),
    and only once it expired unless `force`: a live lease belongs to a run still working."""
    held = read_lease(store, section_id)
    if held is None:
        raise LockError(f"section {section_id} is not locked")
    if held[0].lock_id != lock_id:
        raise LockError(f"section {section_id} is held by lock {held[0].lock_id}, not {lock_id}")
    now = time.time() if now is None else now
    if held[0].expires > now and not force:
        raise LockError(f"lock {lock_id} on section {section_id} is live: it expires at "
                        f"{_utc(held[0].expires)} (in {held[0].expires - now:.0f}s); its run may "
                        "still be working. Wait, or pass --force to remove it anyway")
    store.delete([lock_key(section_id)])
    return held[0]
