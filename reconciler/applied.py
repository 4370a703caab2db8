"""The last applied commit, kept in the bucket (`reconciler-state/last-applied.json`), so that
each merge's apply run covers everything changed since the last run that finished: a queued run
GitHub cancelled (it keeps one pending run per concurrency group) loses nothing.

The record moves only after a successful apply, by a conditional write (If-Match on the version
read, If-None-Match when there is none, read again on a lost race), and only forwards: to a
descendant of the recorded commit. A recorded commit this clone does not know, or one on
another line of history (a force-push), is replaced only by a run that applied a full plan.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from . import git
from .layout import ObjectMeta
from .store import PreconditionFailed, Store, StoreError

KEY = "reconciler-state/last-applied.json"
META = ObjectMeta("application/json", "no-store")
VERSION = 1
ATTEMPTS = 5  # conditional writes lost to other runs before giving up


class Step(Enum):
    """Where a newly applied commit stands against the recorded one."""

    FORWARD = "forward"  # a descendant of the recorded commit
    BEHIND = "behind"  # the recorded commit, or one of its ancestors: already covered
    UNRELATED = "unrelated"  # another line of history, or a commit this clone does not know


Ancestry = Callable[[str, str], Step]  # (recorded, applied) -> Step


@dataclass(frozen=True)
class Recorded:
    """What the record holds: the commit (None when there is none, or it is unreadable) and the
    object's ETag (None when absent), on which the next write is conditional."""

    commit: str | None
    etag: str | None


def read(store: Store) -> Recorded:
    """The record as the store has it now (one GET)."""
    got = store.get(KEY)
    if got is None:
        return Recorded(None, None)
    try:
        doc = json.loads(got[0])
    except ValueError:
        doc = None
    commit = doc.get("commit") if isinstance(doc, dict) and doc.get("version") == VERSION \
        else None
    return Recorded(commit if isinstance(commit, str) and commit else None, got[1].etag)


def git_ancestry(root: Path | None) -> Ancestry:
    """Step of `applied` against `recorded` in the clone at `root`."""

    def step(recorded: str, applied: str) -> Step:
        if not git.known_commit(root, recorded):
            return Step.UNRELATED
        if git.is_ancestor(root, applied, recorded):
            return Step.BEHIND
        if git.is_ancestor(root, recorded, applied):
            return Step.FORWARD
        return Step.UNRELATED

    return step


def refusal(now: Recorded, commit: str, ancestry: Ancestry, *, full: bool = False) -> str | None:
    """Why the record must stay where it is rather than move to `commit` (None: it may move)."""
    if now.commit is None:
        return None
    step = ancestry(now.commit, commit)
    if step is Step.BEHIND:
        return f"kept {now.commit[:12]}: {commit[:12]} is not newer"
    if step is Step.UNRELATED and not full:
        return (f"kept {now.commit[:12]}: not an ancestor of {commit[:12]}, and this run did "
                "not apply a full plan")
    return None


def write(store: Store, now: Recorded, commit: str, run_url: str | None = None) -> str:
    """Move the record from `now` to `commit`, conditionally on `now` (PreconditionFailed when
    another run wrote in between); returns what was done, in words."""
    body = json.dumps({"version": VERSION, "commit": commit, "run": run_url}).encode()
    store.put_bytes(KEY, body, META, if_match=now.etag, if_none_match=now.etag is None)
    before = f" (was {now.commit[:12]})" if now.commit else ""
    return f"recorded {commit[:12]} as the last applied commit{before}"


def advance(store: Store, commit: str, ancestry: Ancestry, *, full: bool = False,
            run_url: str | None = None) -> str:
    """Record `commit` as applied if that moves the record forwards (or, after a full plan,
    off a commit on another line of history); returns what was done, in words. StoreError when
    other runs kept winning the conditional write."""
    for _ in range(ATTEMPTS):
        now = read(store)
        why = refusal(now, commit, ancestry, full=full)
        if why is not None:
            return why
        try:
            return write(store, now, commit, run_url)
        except PreconditionFailed:
            continue
    raise StoreError(f"last applied commit {KEY}: changed by other runs {ATTEMPTS} times in a "
                     "row")
