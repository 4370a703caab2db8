"""Reading the manifests' inputs (videos, supplied dubs) from s3://, https:// or the repository.

Observation (`identify`) is cheap and read-only: a HEAD for remote inputs, a content hash for
local files. It yields the identity recorded on every rendition, so a changed input is rebuilt.
`fetch` streams an input to a local file for ffmpeg.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from .manifest import Source
from .media import MediaError, probe
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


def identify(source: Source) -> InputState:
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
            # Redirects are not followed: a URL is checked where it points, not elsewhere.
            resp = httpx.head(source.uri, follow_redirects=False, timeout=30)
            if resp.is_redirect:
                return InputState(None, f"{source.display()}: redirects are not followed")
            if resp.status_code >= 400:
                return InputState(None, f"{source.display()}: HTTP {resp.status_code}")
            tag = resp.headers.get("etag") or resp.headers.get("last-modified") or "?"
            return InputState(f"https:{tag.strip(chr(34))}:{resp.headers.get('content-length')}")
    except (StoreError, httpx.HTTPError, OSError) as err:
        return InputState(None, f"{source.display()}: {type(err).__name__}")
    raise ValueError(f"cannot identify a {source.kind} input")


def fetch(source: Source, dest_dir: Path) -> Path:
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
        try:
            with httpx.stream("GET", source.uri, follow_redirects=False, timeout=60) as resp:
                if resp.status_code >= 300:
                    raise InputError(f"{source.display()}: HTTP {resp.status_code}")
                with dest.open("wb") as fh:
                    for chunk in resp.iter_bytes(CHUNK):
                        fh.write(chunk)
        except httpx.HTTPError as err:
            raise InputError(f"{source.display()}: {type(err).__name__}") from err
        return dest
    raise InputError(f"cannot fetch a {source.kind} input")



def duration(source: Source) -> float | None:
    """The input's duration in seconds, read by ffprobe without downloading the whole file
    (remote inputs through a short-lived URL that is never printed); None when unknown."""
    try:
        if source.kind == "file":
            assert source.path is not None
            return probe(source.path, source.display()).duration or None
        if source.kind == "s3":
            bucket, key = _s3_parts(source.uri)
            url = _s3_store(bucket).client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=900
            )
        else:
            url = source.uri
        return probe(url, source.display()).duration or None
    except (MediaError, StoreError, OSError, BotoCoreError, ClientError):
        return None
