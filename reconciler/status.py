"""What the catalogue looks like now, for a person (`reconcile status`, `reconcile state show`,
`reconcile locks`). Read-only: built from the same observation and plan as `reconcile plan`,
and from the sections' leases; nothing here writes.

The board is a section × language table; each cell is one state, the first that holds of:
locked (a live lease on the section: an apply is working on it), dubbing (a dub job record: a
paid dub not yet cached), missing (master does not list a complete rendition), drifted (the
plan would change it, or cannot), pending invalidation (the CDN has not accepted an earlier
apply's invalidation of it), published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from . import layout
from .lock import Lease
from .manifest import Section
from .observed import ObservedSection
from .plan import FORMAT_VERSION, Action, Kind, Plan, SectionPlan
from .store import ObjectInfo


class State(StrEnum):
    LOCKED = "locked"
    DUBBING = "dubbing"
    MISSING = "missing"
    DRIFTED = "drifted"
    PENDING = "pending invalidation"
    PUBLISHED = "published"


@dataclass(frozen=True)
class Cell:
    state: State
    detail: str = ""


@dataclass(frozen=True)
class Row:
    section_id: int
    manifest: str | None
    cells: dict[str, Cell]  # language code -> its state, in manifest order
    lease: Lease | None = None  # the section's lease, live or not


@dataclass(frozen=True)
class Board:
    languages: tuple[str, ...]
    rows: tuple[Row, ...]
    now: float  # when the leases were judged live or expired


def utc(ts: float) -> str:
    """An instant as ISO 8601 UTC, to the second (what the views print)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Section-wide actions that change what every language's player gets (the video, and the
# playlists and headers it shares); a master rewritten to add or drop a language is that
# language's cell, not the others'.
_SECTION_WIDE = (Kind.PACKAGE_VIDEO, Kind.ADOPT, Kind.FIX_METADATA, Kind.REWRITE_PLAYLIST)


def _drift(sp: SectionPlan, code: str) -> list[str]:
    """Why the plan would change (or cannot converge) this language's cell."""
    mine = [a for a in sp.actions if a.language == code]
    shared = [a for a in sp.actions if a.language is None and (
        a.type in _SECTION_WIDE or (a.type == Kind.WRITE_MASTER and a.reason == "content differs"))]
    why = [_said(a) for a in (*mine, *shared)]
    why += [f"error: {e.what}" for e in sp.errors if e.language in (code, None)]
    return why


def _said(action: Action) -> str:
    what = "video" if action.type == Kind.PACKAGE_VIDEO else str(action.type).replace("_", " ")
    return f"{what}: {action.reason}" if action.reason else what


def _dubbing(obs: ObservedSection, code: str) -> str | None:
    """A job record of this language's dub: paid (or being paid) and not yet cached."""
    prefix = f"{layout.dub_cache_prefix(obs.section_id)}{code}/"
    for key, record in sorted(obs.dub_jobs.items()):
        if key.startswith(prefix):
            ident = record.get("dubbing_id")
            return f"dub {ident} in progress" if ident else "a dub was being created"
    return None


def _cell(plan: Plan, sp: SectionPlan, obs: ObservedSection, code: str,
          lease: Lease | None, now: float) -> Cell:
    if lease is not None and lease.expires > now:
        return Cell(State.LOCKED, describe_lease(lease, now))
    dubbing = _dubbing(obs, code)
    if dubbing:
        return Cell(State.DUBBING, dubbing)
    rend = obs.rendition(code)
    drift = _drift(sp, code)
    if code not in obs.master_languages() or not rend.complete:
        return Cell(State.MISSING, "; ".join(drift) or "not listed in master.m3u8")
    if drift:
        return Cell(State.DRIFTED, "; ".join(drift))
    pending = plan.pending_invalidation
    folders = (layout.cdn_path(layout.master_key(obs.section_id)),
               layout.cdn_folder(layout.section_prefix(obs.section_id)),
               layout.cdn_folder(layout.audio_dir(obs.section_id, code)))
    if pending is not None and any(p in folders for p in pending.paths):
        return Cell(State.PENDING, f"since {pending.since}")
    return Cell(State.PUBLISHED)


def board(plan: Plan, sections: list[Section], observed: dict[int, ObservedSection],
          leases: dict[int, Lease], now: float) -> Board:
    """The board of `sections` (their declared languages) from a plan and the observation it
    was made from, and the sections' leases judged at `now`."""
    by_id = {sp.section_id: sp for sp in plan.sections}
    rows = []
    for section in sections:
        sid = section.section_id
        lease = leases.get(sid)
        cells = {lang.code: _cell(plan, by_id[sid], observed[sid], lang.code, lease, now)
                 for lang in section.languages}
        rows.append(Row(sid, section.file, cells, lease))
    languages = tuple(dict.fromkeys(code for row in rows for code in row.cells))
    return Board(languages, tuple(rows), now)


def describe_lease(lease: Lease, now: float) -> str:
    """`lock ID held by host h, pid 1 for 'apply' (expires 2026-…Z, in 40s)`."""
    who = ", ".join(f"{k} {v}" for k, v in lease.owner.items()) or "(unknown)"
    left = lease.expires - now
    when = f"in {left:.0f}s" if left > 0 else f"expired {-left:.0f}s ago"
    return (f"lock {lease.lock_id} held by {who} for {lease.operation!r} "
            f"(expires {utc(lease.expires)}, {when})")


def lease_dict(lease: Lease, now: float) -> dict:
    return {"lockId": lease.lock_id, "holder": lease.owner, "operation": lease.operation,
            "created": utc(lease.created), "expires": utc(lease.expires),
            "live": lease.expires > now}


def board_text(b: Board) -> str:
    """A fixed-width table (`—`: the section does not declare the language), then each cell
    that is not published with why, and each section's lease."""
    if not b.rows:
        return "No sections.\n"
    width = max(len(str(s)) for s in State) + 1
    lines = ["section".ljust(9) + "".join(code.ljust(width) for code in b.languages).rstrip()]
    for row in b.rows:
        marks = [str(row.cells[c].state) if c in row.cells else "—" for c in b.languages]
        lines.append(str(row.section_id).ljust(9)
                     + "".join(m.ljust(width) for m in marks).rstrip())
    notes = [f"  {row.section_id}/{code}: {cell.state}: {cell.detail}"
             for row in b.rows for code, cell in row.cells.items()
             if cell.state != State.PUBLISHED and cell.detail]
    leases = [f"  {row.section_id}: {describe_lease(row.lease, b.now)}"
              for row in b.rows if row.lease is not None]
    if notes:
        lines += ["", "Not published as declared:", *notes]
    if leases:
        lines += ["", "Locks:", *leases]
    counts = {str(s): sum(c.state == s for r in b.rows for c in r.cells.values()) for s in State}
    lines += ["", "; ".join(f"{n} {s}" for s, n in counts.items() if n) + "."]
    return "\n".join(lines) + "\n"


def board_json(b: Board) -> str:
    doc = {
        "formatVersion": FORMAT_VERSION,
        "languages": list(b.languages),
        "sections": [
            {"sectionId": row.section_id, "manifest": row.manifest,
             "lock": lease_dict(row.lease, b.now) if row.lease else None,
             "languages": {code: {"state": str(cell.state), "detail": cell.detail}
                           for code, cell in row.cells.items()}}
            for row in b.rows
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


# -- one section's state (`reconcile state show`) ------------------------------------------


@dataclass(frozen=True)
class SectionState:
    """Everything the store holds about one section: its objects, the stamps on its playlists,
    its dub cache (with each dub's id) and job records, and its lease."""

    section_id: int
    objects: dict[str, ObjectInfo]
    master_languages: tuple[str, ...]
    dub_cache: dict[str, ObjectInfo]
    dub_jobs: dict[str, dict]
    lease: Lease | None


def section_state_text(state: SectionState, now: float) -> str:
    sid = state.section_id
    prefix = layout.section_prefix(sid)
    lines = [f"section {sid} ({prefix})",
             f"master languages: {', '.join(state.master_languages) or '(no master)'}",
             f"lock: {describe_lease(state.lease, now) if state.lease else 'none'}",
             "", f"objects ({len(state.objects)}):"]
    for key, info in sorted(state.objects.items()):
        lines.append(f"  {key[len(prefix):]}  {info.size} B  etag {info.etag.strip(chr(34))}")
        lines += [f"      {k}: {v}" for k, v in sorted(info.user_metadata.items())]
    lines += ["", f"dub cache ({len(state.dub_cache)}):"]
    for key, info in sorted(state.dub_cache.items()):
        record = state.dub_jobs.get(key)
        said = (f"job record {json.dumps(record, sort_keys=True)}" if record is not None
                else f"dubbing-id {info.user_metadata.get(layout.DUBBING_ID, '?')}")
        lines.append(f"  {key}  {said}")
    return "\n".join(lines) + "\n"


def section_state_json(state: SectionState, now: float) -> str:
    def obj(info: ObjectInfo) -> dict:
        return {"size": info.size, "etag": info.etag, "metadata": dict(info.user_metadata)}

    doc = {
        "formatVersion": FORMAT_VERSION,
        "sectionId": state.section_id,
        "masterLanguages": list(state.master_languages),
        "objects": {k: obj(v) for k, v in sorted(state.objects.items())},
        "dubCache": {k: obj(v) for k, v in sorted(state.dub_cache.items())
                     if k not in state.dub_jobs},
        "dubJobs": dict(sorted(state.dub_jobs.items())),
        "lock": lease_dict(state.lease, now) if state.lease else None,
    }
    return json.dumps(doc, indent=2) + "\n"


def locks_text(leases: dict[int, Lease], now: float) -> str:
    if not leases:
        return "No locks held.\n"
    return "".join(f"section {sid}: {describe_lease(lease, now)}\n"
                   for sid, lease in sorted(leases.items()))


def locks_json(leases: dict[int, Lease], now: float) -> str:
    return json.dumps({"formatVersion": FORMAT_VERSION, "locks": [
        {"sectionId": sid, **lease_dict(lease, now)} for sid, lease in sorted(leases.items())]},
        indent=2) + "\n"
