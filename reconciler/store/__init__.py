"""The object-store seam: one small interface, two implementations (S3 and a local directory).

The reconciler never knows which one it has. Both keep the same key layout and the same
per-object metadata (one `layout.ObjectMeta`: Content-Type, Cache-Control, SSE, user
metadata), so the local directory is a faithful stand-in for S3 in the demo and in `reconcile
preview`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..errors import ReconcilerError, UsageError
from ..layout import ObjectMeta


class StoreError(ReconcilerError):
    """A store request failed after its retries; the message names the key."""


class PreconditionFailed(StoreError):
    """A conditional write (If-Match / If-None-Match) lost a race."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about one object.

    LIST fills key, size, etag and last_modified only (`meta` None: its headers unknown);
    HEAD/GET fill `meta` too."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    meta: ObjectMeta | None = None

    @property
    def user_metadata(self) -> Mapping[str, str]:
        """Its user metadata (x-amz-meta-*); none when only its LIST entry was read."""
        return self.meta.user_metadata if self.meta else {}

    @property
    def listed(self) -> tuple[str, int, datetime]:
        """What a LIST says of the object: equal for two observations of one unchanged
        object (a CopyObject keeps the ETag but moves LastModified)."""
        return self.etag, self.size, self.last_modified


class Store(Protocol):
    """Object storage as the reconciler uses it. Keys are bucket-relative, no leading slash.

    Every write returns the ETag the store gave the object it wrote, so a caller can tell its
    own object from another writer's in a later LIST (the state index records only what it can
    prove it wrote)."""

    url: str
    # Seconds between the LastModified values the store can tell apart: two changes of an object
    # within one such tick list the same LastModified, so an observation made inside the tick of
    # an object's last change may miss a later change in that tick.
    timestamp_resolution: float

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        """Every object under prefix (all pages)."""

    def head(self, key: str) -> ObjectInfo | None:
        """Headers of one object, or None when absent."""

    def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        """Body and headers of a small object (playlists, init files), or None when absent."""

    def download(self, key: str, dest: Path) -> ObjectInfo:
        """Stream an object to a local file without holding it in memory."""

    def put_file(
        self, key: str, path: Path, meta: ObjectMeta, *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> str:
        """Upload a file (multipart when large), streaming it from disk; returns its ETag.
        `on_bytes` hears the bytes sent, in increments adding up to the file's size (one
        increment may be negative: a part sent again after a failure)."""

    def put_bytes(
        self,
        key: str,
        body: bytes,
        meta: ObjectMeta,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write a small object, optionally conditional; raises PreconditionFailed on 412.
        Returns its ETag."""

    def set_meta(self, key: str, meta: ObjectMeta) -> str:
        """Replace an object's headers and user metadata in place (S3 CopyObject onto itself,
        no re-upload); returns the ETag of the copy."""

    def delete(self, keys: list[str]) -> None:
        """Delete objects; absent keys are not an error."""


STORE_FORMS = "s3://BUCKET[/PREFIX] or file:///ABSOLUTE/DIR"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules


def open_store(url: str, *, workers: int = 8) -> Store:
    """Open `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/DIR` (scheme in any case). Anything else
    - a bare path, `S3:/x`, `ftp://`, a relative file:// - is a UsageError naming the accepted
    forms: a mistyped bucket must never become a local folder that "succeeds"."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket) or ".." in prefix.split("/"):
            raise UsageError(f"store URL {url!r}: bucket {bucket!r} is not a valid S3 bucket "
                             f"name; expected {STORE_FORMS}")
        from .s3 import S3Store

        return S3Store(bucket, workers=workers, prefix=prefix)
    if scheme == "file" and rest.startswith("/"):
        from .local import LocalStore

        return LocalStore(Path(rest))
    raise UsageError(f"store URL {url!r} is not a store: expected {STORE_FORMS}")
