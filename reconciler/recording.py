"""Recording an apply in the state index (state.py): each section as it is once the run's writes
are over, observed, never as the run meant it to be.

A section is recorded from what this run knows (the bodies it wrote and the observation it
began with) only when the store proves nothing else touched it: after the settle wait, one LIST
must show every key this run wrote with the ETag its write returned and every other key exactly
as the run first observed it, and a HEAD of each key this run wrote gives the headers recorded.
Anything else - another writer's overwrite, CopyObject or delete at any moment of the apply, a
failed or partly failed section - and the section is read deep right then (every object HEADed)
and that read is recorded: a plain observe of a section whose apply was disturbed must not trust
the seal rule (observed.unvouched), since another writer's change made before the seal looks
like the reconciler's own write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from . import layout
from .clock import Clock
from .hls import MediaPlaylist
from .master import Facts
from .observe import observe
from .observed import (
    ObservedSection,
    Rendition,
    SubtitleRendition,
    media_problems,
    subtitle_problems,
)
from .state import consistent_with_listing, to_record, update_index
from .store import ObjectInfo, Store, StoreError


class Noted(Protocol):
    """A section's result, to which recording adds its warnings."""

    warnings: list[str]


@dataclass
class Applied:
    """What one section's apply leaves for the state index."""

    section_id: int
    before: ObservedSection  # the observation the run planned from
    # key -> the ETag of this run's last write of it (the content's identity: equal ETags, equal
    # bytes); keys it deleted afterwards are not in it
    written: Mapping[str, str]
    deleted: set[str]  # keys this run deleted and did not write again
    last_write: float | None  # Clock.monotonic() when the last write returned
    master_text: str | None  # master as this run left it (written, or as observed)
    facts: Mapping[str | None, Facts]  # every complete audio/video rendition, by language
    texts: Mapping[str, MediaPlaylist]  # every subtitle playlist, by language
    ok: bool
    result: Noted


def _untouched_by_others(done: Applied, written: Mapping[str, str],
                         listing: Mapping[str, ObjectInfo]) -> bool:
    """Every key this run wrote lists with the ETag its write returned; every other key lists
    exactly as the run observed it (ETag, size, LastModified); nothing else came or went."""
    before = done.before.objects
    for key in set(listing) | set(written) | set(before):
        now = listing.get(key)
        if key in written:
            if now is None or now.etag != written[key]:
                return False
        elif now is None:
            if key not in done.deleted:
                return False
        elif key not in before or before[key].listed != now.listed:
            return False
    return True


def observed_after(done: Applied, store: Store,
                   pool: ThreadPoolExecutor) -> ObservedSection | None:
    """The section as a read finds it now, from what this run wrote and first observed, or None
    when the store does not prove that nothing else touched it (then only a deep read can
    tell). Call once the settle wait is over."""
    sid = done.section_id
    prefix = layout.section_prefix(sid)
    listing = store.list(prefix)
    written = {key: etag for key, etag in done.written.items() if key.startswith(prefix)}
    if not done.ok or not _untouched_by_others(done, written, listing):
        return None
    after = ObservedSection(sid, {key: done.before.objects.get(key, info)
                                  for key, info in listing.items()},
                            master_text=done.master_text)
    keys = sorted(written)
    for key, info in zip(keys, pool.map(store.head, keys), strict=True):
        if info is None or info.listed != listing[key].listed:
            return None  # changed since the LIST
        after.objects[key] = info  # the headers as they are, whoever set them
    present = {layout.rendition_dir(sid, lang): lang for lang in done.facts}
    present = {folder: lang for folder, lang in present.items()
               if any(key.startswith(folder) for key in after.objects)}  # not deleted since
    texts = {code: playlist for code, playlist in done.texts.items()
             if any(key.startswith(layout.subtitles_dir(sid, code)) for key in after.objects)}
    for directory, language in present.items():
        facts = done.facts[language]
        if directory + layout.INIT not in after.objects:
            return None
        rend = Rendition(language, facts.playlist,
                         after.objects.get(directory + layout.playlist_name(language)),
                         facts.track, media_problems(facts.playlist, directory, after.objects))
        if language is None:
            after.video = rend
        else:
            after.audio[language] = rend
    for code, playlist in texts.items():
        directory = layout.subtitles_dir(sid, code)
        after.subtitles[code] = SubtitleRendition(
            code, playlist, after.objects.get(directory + layout.SUBTITLES_PLAYLIST),
            problems=subtitle_problems(playlist, directory, after.objects))
    names = {"video" if lang is None else f"audio/{lang}" for lang in present.values()}
    names |= {f"subtitles/{code}" for code in texts}
    return after if consistent_with_listing(after, names) else None


class Recorder:
    """Collects the sections of an apply (over its re-plan rounds), then records them all in
    the state index with one settle wait and one conditional write."""

    def __init__(self, store: Store, clock: Clock, say: Callable[[str], None],
                 workers: int = 8) -> None:
        self.store = store
        self.clock = clock
        self.say = say
        self.workers = workers
        self.applied: dict[int, Applied] = {}
        self.read: dict[int, ObservedSection] = {}  # read in full and left untouched
        self.removed: dict[int, Noted] = {}  # deleted sections -> their results

    def add(self, applied: list[Applied], removed: Mapping[int, Noted],
            observed: Mapping[int, ObservedSection]) -> None:
        """One round of an apply: a later round's word on a section replaces an earlier's."""
        for sid, obs in observed.items():
            if not obs.indexed and obs.error is None:
                self.read[sid] = obs
        for done in applied:
            self.applied[done.section_id] = done
            self.removed.pop(done.section_id, None)
        for sid, result in removed.items():
            self.removed[sid] = result
            self.applied.pop(sid, None)

    def settle(self) -> None:
        """Wait until the LastModified tick of this run's last write is over: the store's
        timestamp resolution after that write returned. A store stamps a PUT or CopyObject
        when it receives it, so after the wait another writer's later PUT or CopyObject of an
        object this run wrote lists a later LastModified than the one recorded. Not so a
        multipart upload: S3 stamps it with the time it was initiated, so one begun before the
        wait ended and completed after lists an earlier or equal LastModified. Its ETag (the
        MD5 of the parts' MD5s with "-N", never computed here: the index compares the ETag the
        store listed) still differs unless it wrote the same bytes in the same parts; what is
        left, a change of headers alone that way, only a deep read sees (docs/design.md,
        Known limits)."""
        writes = [done.last_write for done in self.applied.values()
                  if done.last_write is not None]
        if writes:
            wait = max(writes) + self.store.timestamp_resolution - self.clock.monotonic()
            if wait > 0:
                self.clock.sleep(wait)

    def _read_deep(self, sid: int) -> ObservedSection | None:
        observed = observe(self.store, [], extra_ids=[sid], deep=True, workers=self.workers)[sid]
        return None if observed.error else observed

    def _record_of(self, done: Applied, pool: ThreadPoolExecutor) -> dict | None:
        try:
            after = observed_after(done, self.store, pool)
            if after is None:
                after = self._read_deep(done.section_id)
        except StoreError as err:
            after = None
            done.result.warnings.append(f"state index: section not recorded ({err}); the next "
                                 "observe reads it in full")
        return to_record(after) if after is not None else None

    def record(self) -> None:
        """Settle, then record every section collected: the applied ones as observed now (see
        the module docstring), the untouched ones as read, the deleted ones not at all. A
        failure costs the next observe a full read of these sections, never the apply: it is
        a warning."""
        self.settle()
        records: dict[int, dict | None] = {sid: to_record(obs) for sid, obs in self.read.items()}
        applied = list(self.applied.values())
        with ThreadPoolExecutor(max_workers=max(1, self.workers),
                                thread_name_prefix="record-head") as heads, \
                ThreadPoolExecutor(max_workers=max(1, min(8, len(applied))),
                                   thread_name_prefix="record") as sections:
            found = sections.map(lambda done: self._record_of(done, heads), applied)
            records.update(zip((done.section_id for done in applied), found, strict=True))
        records.update(dict.fromkeys(self.removed))
        try:
            update_index(self.store, records)
        except StoreError as err:
            warning = (f"state index not updated ({err}); the next observe reads "
                       f"{len(records)} section(s) in full")
            self.say(warning)
            for result in [*(d.result for d in applied), *self.removed.values()]:
                result.warnings.append(warning)
