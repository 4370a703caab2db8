"""InputReader, the production Inputs (inputs/__init__.py): s3:// inputs through the store,
https:// under the fetch policy of sources.py, repository files hashed once per content (the
hash cache)."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..manifest import Source, s3_location
from ..sources import STRICT, FetchError, FetchPolicy
from ..store import Store, StoreError
from . import InputError, InputState

CHUNK = 1024 * 1024


def s3_bucket(bucket: str) -> Store:
    """The production S3 access for s3:// inputs (credentials from the environment)."""
    from ..store.s3 import S3Store

    return S3Store(bucket)


class HashCache:
    """sha256 of local inputs by (size, mtime_ns), kept across runs in a small JSON file, so
    an unchanged lecture is not read through again on every plan. Trusted only while size and
    mtime_ns match, and not for a file modified within RACY_NS of being hashed (a write in the
    same clock tick could keep both); an unreadable file is an empty cache. The file is written
    at most every SAVE_EVERY seconds while new inputs are hashed, and by flush() (at exit), so
    a first plan over thousands of inputs does not rewrite a growing file once per input. It
    keeps every file this process asked about and, up to MAX_ENTRIES, the most recently
    hashed others: inputs come and go (a checkout moved, a lecture replaced), and a file every
    run reads and rewrites must not grow without end."""

    RACY_NS = 2_000_000_000
    SAVE_EVERY = 5.0
    MAX_ENTRIES = 5_000  # ~0.7 MB

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.saved_at: float | None = None
        self.dirty = False
        self.used: set[str] = set()  # the files this process asked about
        self.lock = threading.Lock()
        try:
            loaded = json.loads(path.read_text())
            self.entries: dict[str, list] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self.entries = {}

    def known(self, path: Path) -> str | None:
        """The file's digest when its record holds for the file as it is now; None when there
        is none to trust. Never reads the file."""
        return self._trusted(str(path.resolve()), path.stat())

    def _trusted(self, name: str, stat: os.stat_result) -> str | None:
        with self.lock:
            entry = self.entries.get(name)
            self.used.add(name)
        if (isinstance(entry, list) and len(entry) == 4 and entry[:2] == [stat.st_size,
                stat.st_mtime_ns] and entry[3] - stat.st_mtime_ns > self.RACY_NS):
            return str(entry[2])
        return None

    def digest(self, path: Path) -> str:
        stat = path.stat()
        name = str(path.resolve())
        known = self._trusted(name, stat)
        if known is not None:
            return known
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        value = f"sha256:{digest.hexdigest()}"
        with self.lock:
            self.entries[name] = [stat.st_size, stat.st_mtime_ns, value, time.time_ns()]
            self.dirty = True
            if self.saved_at is None or self.clock() - self.saved_at >= self.SAVE_EVERY:
                self._save()
        return value

    def flush(self) -> None:
        """Write what was hashed since the last save."""
        with self.lock:
            if self.dirty:
                self._save()

    def _save(self) -> None:
        """Best effort (a read-only home only costs the next run a hash): atomic replace."""
        self.saved_at, self.dirty = self.clock(), False
        if len(self.entries) > self.MAX_ENTRIES:
            others = sorted((name for name in self.entries if name not in self.used),
                            key=lambda name: _hashed_at(self.entries[name]), reverse=True)
            keep = self.used | set(others[:max(0, self.MAX_ENTRIES - len(self.used))])
            self.entries = {name: self.entries[name] for name in keep if name in self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:
            pass


def _hashed_at(entry: object) -> int:
    """When an entry's file was hashed (time_ns), 0 for an entry of another shape."""
    ok = isinstance(entry, list) and len(entry) == 4 and isinstance(entry[3], int)
    return entry[3] if ok else 0  # type: ignore[index]


def cache_dir() -> Path:
    """$RECONCILER_CACHE_DIR, else $XDG_CACHE_HOME/reconciler, else ~/.cache/reconciler."""
    if os.environ.get("RECONCILER_CACHE_DIR"):
        return Path(os.environ["RECONCILER_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler"


_caches: dict[Path, HashCache] = {}
_caches_lock = threading.Lock()


def _cache() -> HashCache:
    where = cache_dir() / "input-hashes.json"
    with _caches_lock:
        if where not in _caches:
            _caches[where] = HashCache(where)
            atexit.register(_caches[where].flush)
        return _caches[where]


def known_digest(path: Path) -> str | None:
    """A local file's sha256 identity when the hash cache knows and trusts it, without reading
    the file (what packager/remembered.py keys its reads by)."""
    return _cache().known(path)


class InputReader:
    """The production Inputs: https under `policy` (sources.py), s3:// through the store `s3`
    opens for a bucket, repository files from disk."""

    def __init__(self, policy: FetchPolicy = STRICT,
                 s3: Callable[[str], Store] = s3_bucket) -> None:
        self.policy = policy
        self.s3 = s3

    def identify(self, source: Source) -> InputState:
        """Identity of an input (content hash, or ETag and size), or why it is unreadable."""
        try:
            if source.kind == "file":
                assert source.path is not None
                if not source.path.is_file():
                    return InputState(None, f"{source.display()}: no such file")
                return InputState(_cache().digest(source.path))
            if source.kind == "s3":
                bucket, key = s3_location(source.uri)
                info = self.s3(bucket).head(key)
                if info is None:
                    return InputState(None, f"{source.display()}: no such object")
                return InputState(f"s3:{info.etag}:{info.size}")
            if source.kind == "https":
                resp = self._request("HEAD", source)
                tag = resp.headers.get("etag") or resp.headers.get("last-modified") or "?"
                size = resp.headers.get("content-length")
                return InputState(f"https:{tag.strip(chr(34))}:{size}")
        except FetchError as err:
            return InputState(None, str(err))
        except (StoreError, OSError) as err:
            return InputState(None, f"{source.display()}: {type(err).__name__}")
        raise ValueError(f"cannot identify a {source.kind} input")

    def _request(self, method: str, source: Source, consume: Callable | None = None):
        """One request under the policy. httpx is loaded here, on the first https input, so a
        run whose inputs are files and S3 objects never pays for importing it."""
        from ..transport import request

        return request(self.policy, method, source.uri, source.display(), consume=consume)

    def fetch(self, source: Source, dest_dir: Path) -> Path:
        """A local file with the input's bytes (the file itself for repository files)."""
        if source.kind == "file":
            assert source.path is not None
            if not source.path.is_file():
                raise InputError(f"{source.display()}: no such file")
            return source.path
        dest_dir.mkdir(parents=True, exist_ok=True)
        remote = s3_location(source.uri)[1] if source.kind == "s3" else urlsplit(source.uri).path
        name = Path(remote).name[-60:] or "input"  # a key may be 1,024 bytes, a file name 255
        dest = dest_dir / f"{hashlib.sha256(source.uri.encode()).hexdigest()[:12]}-{name}"
        if source.kind == "s3":
            bucket, key = s3_location(source.uri)
            try:
                self.s3(bucket).download(key, dest)
            except StoreError as err:
                raise InputError(f"{source.display()}: {err}") from err
            return dest
        if source.kind == "https":

            def save(resp) -> None:
                with dest.open("wb") as fh:
                    for chunk in resp.iter_bytes(CHUNK):
                        fh.write(chunk)

            try:
                self._request("GET", source, consume=save)
            except FetchError as err:
                dest.unlink(missing_ok=True)
                raise InputError(str(err)) from None
            return dest
        raise InputError(f"cannot fetch a {source.kind} input")
