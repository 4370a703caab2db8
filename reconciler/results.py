"""What an apply did: each section's result (what was written, what failed where) and the
run's Outcome. Data the engine returns and the views print; apply.py fills it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from . import layout
from .cdn import Invalidation
from .plan import Plan


class Step(StrEnum):
    """Where in applying a section something failed."""

    PACKAGE_VIDEO = "package video"
    DUB = "dub"
    PACKAGE_AUDIO = "package audio"
    PACKAGE_SUBTITLES = "package subtitles"
    FINISH = "finish"
    WRITE_MASTER = "write master"
    DELETE_SECTION = "delete section"


@dataclass(frozen=True)
class Failure:
    """A step that failed for a language (None: the whole section), typed for the front ends."""

    step: Step
    language: str | None
    message: str
    detail: str = ""

    def __str__(self) -> str:
        who = f"{self.language}: " if self.language else ""
        return f"{who}{self.step}: {self.message}"


@dataclass
class SectionResult:
    section_id: int
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    dubbed: list[str] = field(default_factory=list)
    languages_ready: list[str] = field(default_factory=list)
    master_written: bool = False
    conflict: bool = False  # master changed under us: re-observe and re-plan
    invalidation_paths: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.conflict

    @property
    def failed_languages(self) -> list[str]:
        return [f.language for f in self.failures if f.language]

    @property
    def failed_audio(self) -> set[str]:
        """Languages whose audio failed (a failed subtitle rendition leaves the audio listed)."""
        return {f.language for f in self.failures
                if f.language and f.step != Step.PACKAGE_SUBTITLES}


def public_master_url(cdn_url: str | None, store_url: str, section_id: int) -> str:
    """Where players find a section: through the CDN when there is one, else the store."""
    return layout.master_url(cdn_url or store_url, section_id)


@dataclass
class Outcome:
    """What an apply did: the plan it ran, each section's result, the one invalidation (and
    where it went), and the errors of no one section (a lost lock, a refused invalidation)."""

    plan: Plan
    results: list[SectionResult]
    invalidation: Invalidation | None
    cdn_url: str | None
    store_url: str
    cdn: str = ""  # where the invalidation went (or why it did not)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.errors and all(r.ok for r in self.results)
                and not self.plan.has_errors)

    def master_url(self, section_id: int) -> str:
        return public_master_url(self.cdn_url, self.store_url, section_id)
