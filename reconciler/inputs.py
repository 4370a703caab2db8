"""Reading the manifests' inputs (videos, supplied dubs) from s3://, https:// or the repository.

Observation (`identify`) is cheap and read-only: a HEAD for remote inputs, a content hash for
local files. It yields the identity recorded on every rendition, so a changed input is rebuilt.
`fetch` streams an input to a local file: ffmpeg and ffprobe only ever read local files, and
https inputs are fetched under the one address policy of sources.py.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .manifest import Source
from .media import MediaError, probe
from .sources import STRICT, FetchError, FetchPolicy, request
from .store import StoreError

CHUNK = 1024 * 1024


class InputError(Exception):
    """An input cannot be read; the message names it without secrets."""


@dataclass(frozen=True)
class InputState:
    """What observation learned of one input: its identity, or why it is unreadable."""

    identity: str | None
    error: str | None = None


def _s3_parts(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.netloc, unquote(parts.path.lstrip("/"))


def _s3_store(bucket: str):
    from .store.s3 import S3Store

    return S3Store(bucket)


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    value = f"sha256:{digest.hexdigest()}"
    with _hash_lock:
        _hash_cache[key] = value
    return value


def identify(source: Source, policy: FetchPolicy = STRICT) -> InputState:
    """Identity of an input (content hash, or ETag and size), or the reason it is unreadable."""
    try:
        if source.kind == "file":
            assert source.path is not None
            if not source.path.is_file():
                return InputState(None, f"{source.display()}: no such file")
            return InputState(_sha256(source.path))
        if source.kind == "s3":
            bucket, key = _s3_parts(source.uri)
            info = _s3_store(bucket).head(key)
            if info is None:
                return InputState(None, f"{source.display()}: no such object")
            return InputState(f"s3:{info.etag}:{info.size}")
        if source.kind == "https":
            resp = request(policy, "HEAD", source.uri, source.display())
            tag = resp.headers.get("etag") or resp.headers.get("last-modified") or "?"
            return InputState(f"https:{tag.strip(chr(34))}:{resp.headers.get('content-length')}")
    except FetchError as err:
        return InputState(None, str(err))
    except (StoreError, OSError) as err:
        return InputState(None, f"{source.display()}: {type(err).__name__}")
    raise ValueError(f"cannot identify a {source.kind} input")


def fetch(source: Source, dest_dir: Path, policy: FetchPolicy = STRICT) -> Path:
    """A local file with the input's bytes (the file itself for repository files)."""
    if source.kind == "file":
        assert source.path is not None
        if not source.path.is_file():
            raise InputError(f"{source.display()}: no such file")
        return source.path
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urlsplit(source.uri).path).name or "input"
    dest = dest_dir / f"{hashlib.sha256(source.uri.encode()).hexdigest()[:12]}-{name}"
    if source.kind == "s3":
        bucket, key = _s3_parts(source.uri)
        try:
            _s3_store(bucket).download(key, dest)
        except StoreError as err:
            raise InputError(f"{source.display()}: {err}") from err
        return dest
    if source.kind == "https":

        def save(resp) -> None:
            with dest.open("wb") as fh:
                for chunk in resp.iter_bytes(CHUNK):
                    fh.write(chunk)

        try:
            request(policy, "GET", source.uri, source.display(), consume=save)
        except FetchError as err:
            dest.unlink(missing_ok=True)
            raise InputError(str(err)) from None
        return dest
    raise InputError(f"cannot fetch a {source.kind} input")


def duration(source: Source, policy: FetchPolicy = STRICT) -> float | None:
    """The input's duration in seconds, or None when unknown. ffprobe reads local files only:
    a remote input is downloaded (under the policy) into a temporary folder first."""
    try:
        if source.kind == "file":
            return probe(fetch(source, Path()), source.display()).duration or None
        with tempfile.TemporaryDirectory(prefix="reconciler-probe-") as tmp:
            return probe(fetch(source, Path(tmp), policy), source.display()).duration or None
    except (MediaError, InputError, OSError):
        return None
