"""The plan's data: what a plan is, independent of how it is made (planner.py, pure) and
shown (render.py) or executed (apply.py), like Terraform's internal/plans. Each action names
what it does to which rendition and why; its `change` (create/update/delete) gives the `+ ~ -`
symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import UsageError

FORMAT_VERSION = 2  # 2: every JSON key camelCase


class Kind(StrEnum):
    PACKAGE_VIDEO = "package_video"
    DUB = "dub"
    PACKAGE_AUDIO = "package_audio"
    PACKAGE_SUBTITLES = "package_subtitles"
    FIX_METADATA = "fix_metadata"
    ADOPT = "adopt"  # stamp a rendition another tool wrote, once checked against the input
    REWRITE_PLAYLIST = "rewrite_playlist"
    WRITE_MASTER = "write_master"
    DELETE_OBJECTS = "delete_objects"


class Change(StrEnum):
    """What an action does to its objects: the `+ ~ -` of the views."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"  # rebuilt although up to date (`--replace`): Terraform's `-/+`


REBUILT = (Change.UPDATE, Change.REPLACE)  # a rendition's objects rewritten (so invalidated)


class Problem(StrEnum):
    """What a plan error is about; with its language, what a front end maps it by."""

    OBSERVE = "observe"  # the section could not be observed
    VIDEO = "video"
    AUDIO = "audio"
    SUBTITLES = "subtitles"
    DUB = "dub"
    PRUNE = "prune"  # pruning would leave the section without a language
    REMOVED = "removed"  # whole sections a prune may not delete (the mass-prune guard)
    ADOPT = "adopt"  # `reconcile import`: a rendition that cannot be adopted as it is


@dataclass(frozen=True)
class PlanError:
    """Why part of a section cannot be planned. `str()` is the one line the views print."""

    section: int
    language: str | None
    kind: Problem
    message: str

    @property
    def what(self) -> str:
        """The error without its language: what a per-language report says."""
        if self.kind in (Problem.AUDIO, Problem.SUBTITLES):
            return f"{self.kind} {self.message}"
        if self.kind in (Problem.VIDEO, Problem.DUB):
            return f"{self.kind}: {self.message}"
        return self.message

    def __str__(self) -> str:
        return f"{self.language}: {self.what}" if self.language else self.what


@dataclass(frozen=True)
class PlanOptions:
    """What the plan was asked to do beyond converging; carried on the Plan (and in a saved
    plan) so an apply of a saved plan runs with exactly the reviewed options."""

    prune: bool = False
    allow_empty: bool = False
    # Renditions to rebuild although up to date (`--replace 11/ja`): "S/video", "S/LANG"
    # (a dubbed language is dubbed anew) or "S/subtitles/LANG"; see planner.replace_targets.
    replace: tuple[str, ...] = ()
    # `reconcile import`: only adopt what is there (stamps, metadata, playlists, master);
    # nothing encoded, dubbed or deleted; what would be is a Problem.ADOPT error instead.
    adopt_only: bool = False


@dataclass(frozen=True)
class Action:
    type: Kind
    change: Change
    language: str | None = None
    reason: str = ""
    keys: tuple[str, ...] = ()
    source_id: str | None = None  # identity stamped on a (re)built rendition
    minutes: float | None = None  # billable dubbing minutes
    detail: tuple[tuple[str, str], ...] = ()
    stamp: tuple[tuple[str, str], ...] = ()  # user metadata ADOPT adds to the playlist


@dataclass(frozen=True)
class SectionPlan:
    section_id: int
    file: str | None
    actions: tuple[Action, ...] = ()
    languages_before: tuple[str, ...] = ()
    languages_after: tuple[str, ...] = ()
    errors: tuple[PlanError, ...] = ()
    notes: tuple[str, ...] = ()
    unpriced: tuple[str, ...] = ()  # languages to dub whose billable minutes are unknown

    def actions_of(self, kind: Kind) -> list[Action]:
        return [a for a in self.actions if a.type == kind]


@dataclass(frozen=True)
class PendingInvalidation:
    """Paths earlier applies could not get the CDN to accept (kept in the bucket until it
    does): the next apply sends them with its own. `since`: when the oldest was recorded (UTC,
    ISO 8601); `error`: why the last attempt failed ("" when it never got an answer)."""

    paths: tuple[str, ...]
    since: str
    error: str = ""


@dataclass(frozen=True)
class Plan:
    sections: tuple[SectionPlan, ...]
    invalidation_paths: tuple[str, ...] = ()
    options: PlanOptions = PlanOptions()
    # Not part of what a saved plan fixes: an apply sends whatever is pending when it ends.
    pending_invalidation: PendingInvalidation | None = None

    @property
    def has_changes(self) -> bool:
        """Anything to do, a pending invalidation included (the CDN may serve stale objects)."""
        return any(s.actions for s in self.sections) or self.pending_invalidation is not None

    @property
    def has_errors(self) -> bool:
        return any(s.errors for s in self.sections)

    def counts(self) -> dict[str, int]:
        out = {str(c): 0 for c in Change}
        for s in self.sections:
            for a in s.actions:
                out[str(a.change)] += 1
        if self.pending_invalidation is not None:
            out[str(Change.UPDATE)] += 1  # `~ invalidate N paths pending since …`
        return out

    @property
    def dub_minutes(self) -> float:
        return round(sum(a.minutes or 0 for s in self.sections for a in s.actions), 2)

    @property
    def unpriced_dubs(self) -> list[str]:
        """`section 11: ja` for each dub left out because its minutes are unknown."""
        return [f"section {s.section_id}: {code}" for s in self.sections for code in s.unpriced]


VIDEO, SUBTITLES = "video", "subtitles"  # the words of `--replace S/video`, S/subtitles/L
REPLACE_REASON = "replace requested"
REPLACEMENT = "replacement"  # in a dub's job record: the dub is a `--replace`'s new one


class UnknownReplacement(UsageError):
    """`--replace` names something the manifests do not declare (a usage error)."""


# What `removed` maps a section id to when no deleted manifest names it (else that manifest's
# path): a folder in the bucket that no manifest declares, or a section `reconcile destroy` takes
# down.
ORPHANED = "(no manifest)"
DESTROY = "(reconcile destroy)"
