"""One apply's invalidation, delivered: recorded as pending first, merged with what earlier
applies left pending, kept within CloudFront's quotas, sent once there is room (waiting while
the run's deadline allows), and cleared only once accepted. Whatever is not accepted stays
pending in the bucket for the next plan to show and the next apply to send.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..store import StoreError
from . import Cdn, CdnBusy, CdnError, Invalidation
from .pending import KEY, PendingRecord
from .quota import LIMIT, collapse

WAIT = (2.0, 5.0)  # seconds between looks at a busy distribution (random: concurrent applies
# do not retry in step)


@dataclass
class Delivery:
    """Sends invalidations through `cdn`, keeping what is not yet accepted in `record`.
    `timeout`: how long to wait for capacity on a busy distribution, on `clock` (monotonic
    seconds) with `sleep`, which tests control; `say` reports what does not fail the apply."""

    record: PendingRecord
    cdn: Cdn
    timeout: float = 300.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = field(default=lambda message: None)

    def send(self, paths: list[str]) -> Invalidation | None:
        """Invalidate `paths` and every path still pending, in one request. None when there is
        nothing to send; CdnError (saying the paths are kept pending) when it was not
        accepted."""
        run = f"reconciler-{uuid.uuid4()}"
        if not self.cdn.sends:
            return self.cdn.invalidate(paths, run) if paths else None
        mine = {"paths": paths, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "error": ""}
        try:
            entries = self.record.add(run, paths, mine["since"]) if paths else self.record.read()
        except StoreError as err:
            self.say(f"could not record the invalidation as pending before sending it ({err})")
            entries = {run: mine} if paths else {}
        if not entries:
            return None
        wanted = list(dict.fromkeys([*paths, *(p for e in entries.values() for p in e["paths"])]))
        try:
            sent = self._within_quota(wanted, run)
        except CdnError as err:
            try:
                self.record.keep(entries, str(err))
            except StoreError as store_err:
                raise type(err)(f"{err}; its {len(wanted)} path(s) could not be kept pending "
                                f"either ({store_err}): invalidate them by hand") from err
            raise type(err)(f"{err}; {len(wanted)} path(s) kept pending in {KEY}: the "
                            "next apply sends them") from err
        try:
            self.record.clear(entries)
        except StoreError as err:
            self.say(f"invalidation {sent.id} accepted, but {KEY} could not be cleared "
                     f"({err}); the next apply sends its paths again")
        return sent

    def _within_quota(self, paths: list[str], run: str) -> Invalidation:
        """Send `paths` collapsed to what the quotas leave free; while the distribution is
        busy, look again every 2-5 s until the deadline."""
        deadline = self.clock() + self.timeout
        room = LIMIT  # optimistic: one request when nothing else is in progress
        busy: CdnBusy | None = None  # CloudFront's last refusal
        while True:
            batch = collapse(paths, room)
            if batch is not None:
                try:
                    return self.cdn.invalidate(batch, _reference(run, batch))
                except CdnBusy as err:
                    busy = err
            elif busy is None:
                busy = CdnBusy(f"{self.cdn.description}: no room for {len(paths)} path(s) "
                               f"({room.wildcards} wildcard and {room.files} file paths free)")
            left = deadline - self.clock()
            if left <= 0:
                raise CdnBusy(f"{busy} (still busy after waiting {self.timeout:g} s)")
            self.sleep(min(random.uniform(*WAIT), left))
            room = LIMIT - self.cdn.in_progress()


def _reference(run: str, batch: list[str]) -> str:
    """The CallerReference of one batch: the same request again (a retry) is the same
    invalidation; a batch collapsed differently is another request, never refused as
    InvalidationBatchAlreadyExists."""
    return f"{run}-{hashlib.sha256(chr(10).join(batch).encode()).hexdigest()[:8]}"
