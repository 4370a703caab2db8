"""A recorded log beside a local store: what CloudFront would have been asked, one JSON line
per invalidation (`demo/store/.cdn/invalidations.jsonl`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import CdnError, Invalidation, Usage


class RecordedCdn:
    """CloudFront's contract without the network: the same CallerReference with the same paths
    returns the invalidation already recorded, with other paths it is refused
    (InvalidationBatchAlreadyExists). Every invalidation completes at once, so none is ever in
    progress."""

    sends = True

    def __init__(self, log: Path) -> None:
        self.log = log
        self.description = f"recorded in {log}"

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        try:
            return self._record(paths, caller_reference)
        except OSError as err:  # the log's disk: full, read-only
            raise CdnError(f"CreateInvalidation on {self.log}: {err.strerror or err}") from err

    def _record(self, paths: list[str], caller_reference: str) -> Invalidation:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        existing = self.read()
        for entry in existing:
            if entry["caller_reference"] == caller_reference:
                if entry["paths"] != list(paths):
                    raise CdnError(f"CreateInvalidation on {self.log}: "
                                   "InvalidationBatchAlreadyExists")
                return Invalidation(entry["id"], tuple(entry["paths"]))
        inv_id = f"LOCAL{len(existing) + 1:06d}"
        entry = {
            "id": inv_id,
            "caller_reference": caller_reference,
            "paths": list(paths),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with self.log.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        return Invalidation(inv_id, tuple(paths))

    def in_progress(self) -> Usage:
        return Usage()

    def read(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
