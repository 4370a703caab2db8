"""Invalidations not yet accepted, kept in the bucket (`reconciler-state/pending-invalidations.
json`) so that they are state, not a line in a failed run's log: an apply records its paths
before it asks the CDN, and removes them only once the CDN accepted them; the next plan shows
what is left and the next apply sends it.

One small JSON object: caller reference -> {paths, since, error}. Every change reads it,
changes only its own entries and writes it back with If-Match on the ETag read (If-None-Match
when there was none), again on conflict, so concurrent applies keep each other's entries.
A body that is not such a record reads as empty (and is replaced by the next write).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection

from ..layout import ObjectMeta
from ..store import PreconditionFailed, Store, StoreError

KEY = "reconciler-state/pending-invalidations.json"
META = ObjectMeta("application/json", "no-store")
VERSION = 1
ATTEMPTS = 5  # conditional writes lost to other applies before giving up

Entries = dict[str, dict]  # caller reference -> {"paths": [...], "since": ISO 8601, "error": ...}


def _decode(body: bytes) -> Entries:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    entries = doc.get("invalidations") if isinstance(doc, dict) and doc.get(
        "version") == VERSION else None
    if not isinstance(entries, dict):
        return {}
    return {ref: entry for ref, entry in entries.items()
            if isinstance(entry, dict) and isinstance(entry.get("paths"), list)
            and all(isinstance(p, str) for p in entry["paths"])
            and isinstance(entry.get("since"), str)}


class PendingRecord:
    """The record in one store. It remembers the version it last read or wrote, so a change
    costs one conditional PUT when no other writer came in between (the plan's GET serves the
    apply's first write, that write serves its last); a lost race costs a GET and a retry."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: tuple[Entries, str | None] | None = None  # entries, ETag (None: absent)

    def read(self) -> Entries:
        """Every pending entry (one GET); {} when there is none or it cannot be read."""
        got = self.store.get(KEY)
        entries = _decode(got[0]) if got else {}
        self._known = (entries, got[1].etag if got else None)
        return dict(entries)

    def update(self, change: Callable[[Entries], Entries]) -> Entries:
        """Apply `change` to the record and write the result conditionally, again (after a
        GET) on conflict; returns what was written. StoreError when others kept winning."""
        for _ in range(ATTEMPTS):
            if self._known is None:
                self.read()
            assert self._known is not None
            before, etag = self._known
            after = change(dict(before))
            if after == before:
                return after
            body = json.dumps({"version": VERSION, "invalidations": after}, indent=1).encode()
            try:
                written = self.store.put_bytes(KEY, body, META, if_match=etag,
                                               if_none_match=etag is None)
            except PreconditionFailed:
                self._known = None
                continue
            self._known = (after, written)
            return after
        raise StoreError(f"pending invalidations {KEY}: changed by other writers {ATTEMPTS} "
                         "times in a row")

    def add(self, reference: str, paths: list[str], since: str) -> Entries:
        """Record `paths` as pending under `reference` (before they are sent); every entry
        now pending."""
        return self.update(lambda entries: {**entries, reference: {
            "paths": list(paths), "since": since, "error": ""}})

    def keep(self, entries: Entries, error: str) -> None:
        """Keep these entries pending, noting why they were not accepted (the next plan says
        so); also when recording them before the request had failed."""
        self.update(lambda now: {**now, **{ref: {**entry, "error": error}
                                           for ref, entry in entries.items()}})

    def clear(self, references: Collection[str]) -> None:
        """Remove these entries: the CDN accepted their paths. Entries added meanwhile stay."""
        self.update(lambda entries: {ref: entry for ref, entry in entries.items()
                                     if ref not in references})
