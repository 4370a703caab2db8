"""The store as one section's apply writes to it: guarded by the section's lease, refusing
deletes outside the section, and keeping what each write returned for the state index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import layout
from .clock import Clock
from .store import Store, StoreError


class ForeignKeys(StoreError):
    """A delete named keys outside the section's own folders: refused, nothing deleted."""


class SectionStore:
    """The store as one section's apply writes to it: each write first asks the section's
    lease guard, so a run whose lease could lapse stops writing; a delete is refused outright
    when it names a key outside the section's folder (`layout.in_section`) and its dub cache,
    whatever planned it; reads pass straight through. It keeps the ETag each write returned,
    for the state index (recording.py)."""

    def __init__(self, store: Store, section_id: int, guard: Callable[[], None],
                 clock: Clock) -> None:
        self._store = store
        self._section_id = section_id
        self._guard = guard
        self._clock = clock
        self.written: dict[str, str] = {}  # key -> the ETag of this run's last write of it
        self.deleted: set[str] = set()  # deleted by this run and not written again
        self.last_write: float | None = None  # clock.monotonic() when the last write returned

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def _wrote(self, key: str, etag: str) -> str:
        self.written[key] = etag
        self.deleted.discard(key)
        self.last_write = self._clock.monotonic()
        return etag

    def put_file(self, key: str, path: Path, meta: layout.ObjectMeta, *,
                 on_bytes: Callable[[int], None] | None = None) -> str:
        self._guard()
        return self._wrote(key, self._store.put_file(key, path, meta, on_bytes=on_bytes))

    def put_bytes(self, key: str, body: bytes, meta: layout.ObjectMeta, **conditions) -> str:
        self._guard()
        return self._wrote(key, self._store.put_bytes(key, body, meta, **conditions))

    def set_meta(self, key: str, meta: layout.ObjectMeta) -> str:
        self._guard()
        return self._wrote(key, self._store.set_meta(key, meta))

    def check_own(self, keys: list[str]) -> None:
        """ForeignKeys unless every key is the section's (its folder or its dub cache)."""
        dubs = layout.dub_cache_prefix(self._section_id)
        foreign = [k for k in keys
                   if not (layout.in_section(self._section_id, k) or k.startswith(dubs))]
        if foreign:
            raise ForeignKeys(f"refused to delete {len(foreign)} key(s) outside "
                              f"{layout.section_prefix(self._section_id)}, first {foreign[0]}")

    def delete(self, keys: list[str]) -> None:
        self.check_own(keys)
        self._guard()
        self._store.delete(keys)
        for key in keys:
            self.written.pop(key, None)
            self.deleted.add(key)
        self.last_write = self._clock.monotonic()
