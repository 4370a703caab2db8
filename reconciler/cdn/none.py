"""No distribution configured (an S3 store without CLOUDFRONT_DISTRIBUTION_ID)."""

from __future__ import annotations

from . import Invalidation, Usage


class NoCdn:
    """Paths are reported, nothing is sent, so nothing is ever pending."""

    description = "CLOUDFRONT_DISTRIBUTION_ID not set"
    sends = False

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        return Invalidation("", tuple(paths))

    def in_progress(self) -> Usage:
        return Usage()
