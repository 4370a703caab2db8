"""The CDN seam: one small interface (send an invalidation; say what is in progress), three
implementations: CloudFront (cloudfront.py), a recorded log beside a local store (recorded.py)
and none (none.py: no distribution configured, paths are reported and never sent).

Each implementation is one CDN's contract and nothing more. What an apply builds on it - paths
kept pending in the bucket until accepted (pending.py), requests kept within CloudFront's
quotas and the wait for capacity (quota.py, delivery.py) - works the same over any of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ReconcilerError


class CdnError(ReconcilerError):
    """An invalidation was not accepted; the message names the distribution and why."""


class CdnBusy(CdnError):
    """The distribution has too many invalidations in progress (TooManyInvalidationsInProgress):
    the same request may be accepted once some of them complete."""


@dataclass(frozen=True)
class Invalidation:
    id: str  # "" when nothing was sent (no distribution configured)
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Usage:
    """Invalidation paths counted against a distribution's quotas: wildcard paths (ending in
    `*`) and file paths."""

    wildcards: int = 0
    files: int = 0

    @classmethod
    def of(cls, paths: list[str] | tuple[str, ...]) -> Usage:
        wildcards = sum(p.endswith("*") for p in paths)
        return cls(wildcards, len(paths) - wildcards)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.wildcards + other.wildcards, self.files + other.files)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(max(0, self.wildcards - other.wildcards), max(0, self.files - other.files))

    def within(self, limit: Usage) -> bool:
        return self.wildcards <= limit.wildcards and self.files <= limit.files


class Cdn(Protocol):
    description: str
    # False: paths are only reported (no distribution), so there is nothing to keep pending.
    sends: bool

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        """Create one invalidation for all paths. The same caller_reference with the same
        paths returns the invalidation already created (a retry never makes a second).
        CdnBusy when the distribution's quota is taken; CdnError for anything else."""

    def in_progress(self) -> Usage:
        """The paths of the distribution's invalidations still in progress."""


def open_cdn(store_url: str, distribution_id: str | None = None) -> Cdn:
    """CloudFront when a distribution is configured; a recorded log for a local store."""
    distribution_id = distribution_id or os.environ.get("CLOUDFRONT_DISTRIBUTION_ID")
    if distribution_id:
        from .cloudfront import CloudFront

        return CloudFront(distribution_id)
    if store_url.startswith("file://"):
        from .recorded import RecordedCdn

        return RecordedCdn(Path(store_url[len("file://"):]) / ".cdn" / "invalidations.jsonl")
    from .none import NoCdn

    return NoCdn()


_IMPLEMENTATIONS = {"CloudFront": "cloudfront", "RecordedCdn": "recorded", "NoCdn": "none"}


def __getattr__(name: str) -> object:
    """`from reconciler.cdn import CloudFront` keeps working, while boto3 (a few hundred ms) is
    loaded only by what uses CloudFront."""
    if name in _IMPLEMENTATIONS:
        from importlib import import_module

        return getattr(import_module(f".{_IMPLEMENTATIONS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
