"""The state index: one object in the bucket holding, per section, a record of what a read
found there (every object's ETag, size and LastModified, the headers known, and the facts
observe parses from master, playlists and inits), so observing a converged catalogue is one LIST
and one GET, as Terraform keeps state and refreshes it.

It is a cache, never the truth: observe uses a record only when the LIST of its section shows
exactly the recorded objects and the record passes a full read's checks (observe.from_record),
and anything else - an unreadable index, an unknown version - reads as no index. Writers
(apply, through recording.py) record observations, never intentions, and change only their own
sections' records,
with a conditional write retried on conflict, so concurrent applies of different sections
merge; a failed update only costs the next observe a full read.
"""

from __future__ import annotations

import gzip
import json
import zlib

from . import layout
from .store import PreconditionFailed, Store, StoreError

VERSION = 1
ATTEMPTS = 5  # conditional writes lost to other applies before giving up (a warning)

Records = dict[int, dict]
# An index is about 0.9 MiB per 41,000 objects once decompressed; a body that inflates past this
# is not one (a gzip bomb, or another tool's file) and reads as no index.
MAX_DECODED = 512 * 1024 * 1024


def _decode(body: bytes) -> Records | None:
    """The records of an index body, or None when it is not one this version can read."""
    try:
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
        text = inflate.decompress(body, MAX_DECODED)
        if inflate.unconsumed_tail or not inflate.eof:
            return None
        doc = json.loads(text)
    except (zlib.error, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return None
    sections = doc.get("sections")
    if not isinstance(sections, dict):
        return None
    try:
        return {int(sid): rec for sid, rec in sections.items() if isinstance(rec, dict)}
    except ValueError:
        return None


def _encode(records: Records) -> bytes:
    doc = {"version": VERSION, "sections": {str(sid): records[sid] for sid in sorted(records)}}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6)


def load_index(store: Store) -> Records:
    """Every section's record (one GET); {} when there is no index or it cannot be read."""
    got = store.get(layout.STATE_INDEX_KEY)
    if got is None:
        return {}
    return _decode(got[0]) or {}


def update_index(store: Store, records: dict[int, dict | None]) -> None:
    """Set (or, for None, remove) these sections' records, leaving every other section's as
    another writer left it: read, merge, write with If-Match on the ETag read (If-None-Match
    when there was none), again on conflict. Raises StoreError when it cannot."""
    if not records:
        return
    for _ in range(ATTEMPTS):
        got = store.get(layout.STATE_INDEX_KEY)
        before = (_decode(got[0]) or {}) if got else {}  # an unreadable index is replaced
        merged = dict(before)
        for sid, record in records.items():
            if record is None:
                merged.pop(sid, None)
            else:
                merged[sid] = record
        if merged == before:
            return
        try:
            store.put_bytes(layout.STATE_INDEX_KEY, _encode(merged), layout.STATE_INDEX_META,
                            if_match=got[1].etag if got else None, if_none_match=got is None)
            return
        except PreconditionFailed:
            continue
    raise StoreError(f"state index {layout.STATE_INDEX_KEY}: changed by other writers "
                     f"{ATTEMPTS} times in a row")
