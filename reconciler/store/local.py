"""A local directory that behaves like a bucket: the embedded default and the preview's source.

Objects sit at DIR/<key>, byte for byte as in S3, so any static server could serve the tree.
Their headers sit beside them in a mirror tree, DIR/.meta/<key>.json. Writes are atomic
(temp file + rename); conditional writes hold a lock file so separate processes serialize.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from ..layout import ObjectMeta
from . import ObjectInfo, PreconditionFailed, StoreError

META_DIR = ".meta"
CHUNK = 1024 * 1024
P = ParamSpec("P")
R = TypeVar("R")


def _disk_errors(method: Callable[P, R]) -> Callable[P, R]:
    """The disk's own failures (full, read-only, a permission) are this store's StoreError,
    naming the store and the file, as S3's are (a missing object is each method's business)."""

    @functools.wraps(method)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except OSError as err:
            where = f"{args[0].url}: {err.filename}" if err.filename else args[0].url
            raise StoreError(f"{method.__name__} {where}: {err.strerror or err}") from err

    return checked


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _meta_of(side: dict) -> ObjectMeta:
    """The metadata a sidecar holds: each header under its field's name, the user metadata
    under "metadata"; what it lacks (no sidecar, one from before a header was added) is ""."""
    return ObjectMeta(**{name: side.get(name) or "" for name in ObjectMeta.header_fields()},
                      user_metadata=side.get("metadata") or {})


class LocalStore:
    # LastModified is the file's (or its sidecar's) mtime: nanoseconds on current Linux, a
    # scheduler tick (a few ms) where the kernel stamps files from its coarse clock.
    timestamp_resolution = 0.01

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = f"file://{self.root}"
        self._lock = threading.Lock()

    # -- paths -------------------------------------------------------------------------------
    def _inside(self, path: Path, key: str) -> Path:
        """path, unless where it resolves to (symlinks followed) leaves the store's root."""
        if not path.resolve().is_relative_to(self.root):
            raise StoreError(f"key {key!r} resolves outside the store (symlink); refused")
        return path

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or parts[0].startswith("."):
            raise StoreError(f"invalid key {key!r}")
        return self._inside(self.root.joinpath(*parts), key)

    def _meta_path(self, key: str) -> Path:
        return self._inside(self.root / META_DIR / (key + ".json"), key)

    # -- reads -------------------------------------------------------------------------------
    @_disk_errors
    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base if base else self.root
        out: dict[str, ObjectInfo] = {}
        if not top.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = ""
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix):
                    try:
                        info = self._info(key, with_headers=False)
                    except StoreError:
                        continue  # a symlink out of the store is not an object of it
                    if info is not None:
                        out[key] = info
        return out

    def _sidecar(self, key: str) -> dict | None:
        try:
            return json.loads(self._meta_path(key).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _info(self, key: str, *, with_headers: bool) -> ObjectInfo | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        side = self._sidecar(key)
        mtimes = [stat.st_mtime]
        if side is not None:
            mtimes.append(self._meta_path(key).stat().st_mtime)
        etag = side.get("etag") if side and side.get("size") == stat.st_size else None
        info = ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=etag or _md5_file(path),
            last_modified=datetime.fromtimestamp(max(mtimes), UTC),
        )
        return replace(info, meta=_meta_of(side or {})) if with_headers else info

    @_disk_errors
    def head(self, key: str) -> ObjectInfo | None:
        return self._info(key, with_headers=True)

    @_disk_errors
    def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        info = self.head(key)
        if info is None:
            return None
        try:
            return self._path(key).read_bytes(), info
        except FileNotFoundError:
            return None

    @_disk_errors
    def download(self, key: str, dest: Path) -> ObjectInfo:
        info = self.head(key)
        if info is None:
            raise StoreError(f"GET {self.url}/{key}: no such object")
        shutil.copyfile(self._path(key), dest)
        return info

    # -- writes ------------------------------------------------------------------------------
    def _write_sidecar(self, key: str, meta: ObjectMeta, etag: str, size: int) -> None:
        side = self._meta_path(key)
        side.parent.mkdir(parents=True, exist_ok=True)
        doc = {**{name: getattr(meta, name) for name in ObjectMeta.header_fields()},
               "metadata": dict(meta.user_metadata), "etag": etag, "size": size}
        tmp = side.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{side.name}")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, side)

    def _install(self, key: str, tmp: Path, meta: ObjectMeta) -> str:
        etag = _md5_file(tmp)
        self._write_sidecar(key, meta, etag, tmp.stat().st_size)
        os.replace(tmp, self._path(key))
        return etag

    def _temp_beside(self, key: str) -> Path:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        os.close(fd)
        return Path(name)

    @_disk_errors
    def put_file(
        self, key: str, path: Path, meta: ObjectMeta, *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> str:
        tmp = self._temp_beside(key)
        try:
            shutil.copyfile(path, tmp)
            if on_bytes is not None:
                on_bytes(tmp.stat().st_size)
            return self._install(key, tmp, meta)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def _exclusive(self):
        """Serialize conditional writes across threads and processes."""
        lock_path = self.root / META_DIR / ".lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @_disk_errors
    def put_bytes(
        self,
        key: str,
        body: bytes,
        meta: ObjectMeta,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        tmp = self._temp_beside(key)
        try:
            tmp.write_bytes(body)
            if not (if_match or if_none_match):
                return self._install(key, tmp, meta)
            with self._exclusive():
                current = self._info(key, with_headers=False)
                if if_none_match and current is not None:
                    raise PreconditionFailed(f"PUT {self.url}/{key}: object exists")
                if if_match and (current is None or current.etag != if_match):
                    raise PreconditionFailed(f"PUT {self.url}/{key}: ETag changed")
                return self._install(key, tmp, meta)
        finally:
            tmp.unlink(missing_ok=True)

    @_disk_errors
    def set_meta(self, key: str, meta: ObjectMeta) -> str:
        info = self._info(key, with_headers=False)
        if info is None:
            raise StoreError(f"COPY {self.url}/{key}: no such object")
        self._write_sidecar(key, meta, info.etag, info.size)
        return info.etag

    @_disk_errors
    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
