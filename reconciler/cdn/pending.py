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
from ..plan import PendingInvalidation
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


def read(store: Store) -> Entries:
    """Every pending entry (one GET); {} when there is none or the record cannot be read."""
    got = store.get(KEY)
    return _decode(got[0]) if got else {}


def summary(entries: Entries) -> PendingInvalidation | None:
    """What a plan shows: every pending path once, since the oldest entry, the last error."""
    if not entries:
        return None
    ordered = sorted(entries.values(), key=lambda e: e["since"])
    paths = tuple(dict.fromkeys(p for e in ordered for p in e["paths"]))
    errors = [e["error"] for e in ordered if e.get("error")]
    return PendingInvalidation(paths, ordered[0]["since"], errors[-1] if errors else "")


def update(store: Store, change: Callable[[Entries], Entries]) -> Entries:
    """Apply `change` to the record as it is now and write the result conditionally, again on
    conflict; returns what was written. StoreError when other writers kept winning."""
    for _ in range(ATTEMPTS):
        got = store.get(KEY)
        before = _decode(got[0]) if got else {}
        after = change(dict(before))
        if after == before:
            return after
        body = json.dumps({"version": VERSION, "invalidations": after}, indent=1).encode()
        try:
            store.put_bytes(KEY, body, META, if_match=got[1].etag if got else None,
                            if_none_match=got is None)
            return after
        except PreconditionFailed:
            continue
    raise StoreError(f"pending invalidations {KEY}: changed by other writers {ATTEMPTS} times "
                     "in a row")


def add(store: Store, reference: str, paths: list[str], since: str) -> Entries:
    """Record `paths` as pending under `reference` (before they are sent); every entry now."""
    return update(store, lambda entries: {**entries, reference: {"paths": list(paths),
                                                                "since": since, "error": ""}})


def keep(store: Store, entries: Entries, error: str) -> None:
    """Keep these entries pending, noting why they were not accepted (the next plan says so);
    also when recording them before the request had failed."""
    update(store, lambda now: {**now, **{ref: {**entry, "error": error}
                                         for ref, entry in entries.items()}})


def clear(store: Store, references: Collection[str]) -> None:
    """Remove these entries: the CDN accepted their paths. Entries added meanwhile stay."""
    update(store, lambda entries: {ref: entry for ref, entry in entries.items()
                                   if ref not in references})
