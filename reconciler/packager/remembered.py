"""A Packager that does not read the same bytes twice: what a probe and a loudness measurement
found is kept by the file's content digest, for this process.

Both are pure functions of a file's bytes, and both are asked again and again of the same
lecture: observe probes a dubbed section's video, the apply probes it for packaging and
examines its audio, and a long-lived process (the API) applies the same sections over and
over, so a retried apply does not measure an hour of audio again. The digest comes from
`digest`, which answers only when it already knows the file's digest and trusts it (the
inputs' hash cache, whose entries hold while the file's size and mtime do): a file it does not
know (a fetched copy, a downloaded dub) is read as before, and never hashed just to look it up.
A read that failed is not kept: it is tried again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

from . import Examined, MediaInfo, OnProgress, OnSegment, Packager

Digest = Callable[[Path], str | None]
T = TypeVar("T")


class Reads:
    """What was read, by (what, digest): bounded, the least recently used dropped first."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.found: OrderedDict[tuple, object] = OrderedDict()

    def get(self, key: tuple) -> object | None:
        with self.lock:
            if key in self.found:
                self.found.move_to_end(key)
            return self.found.get(key)

    def put(self, key: tuple, value: object) -> None:
        with self.lock:
            self.found[key] = value
            self.found.move_to_end(key)
            while len(self.found) > self.size:
                self.found.popitem(last=False)


READS = Reads()  # one per process: every run and API request of it shares what was read


class RememberedPackager:
    """`packager` with its probes and examinations of files `digest` knows kept in `reads`."""

    def __init__(self, packager: Packager, digest: Digest, reads: Reads = READS) -> None:
        self.packager = packager
        self.digest = digest
        self.reads = reads

    def _known(self, source: Path) -> str | None:
        try:
            return self.digest(source)
        except OSError:  # gone or unreadable: the packager's own read says why
            return None

    def _read(self, what: tuple, source: Path, read: Callable[[], T]) -> T:
        """`read()`'s answer for `source`, remembered by (what, digest). It is kept only when
        the file still has the digest it was looked up by: a file rewritten while it was read
        no longer does."""
        known = self._known(source)
        if known is None:
            return read()
        key = (*what, known)
        found = self.reads.get(key)
        if found is None:
            found = read()
            if self._known(source) == known:
                self.reads.put(key, found)
        return cast(T, found)

    def probe(self, source: Path, label: str | None = None) -> MediaInfo:
        return self._read(("probe",), source, partial(self.packager.probe, source, label))

    def examine_audio(self, source: Path, *, from_video: bool = False,
                      info: MediaInfo | None = None) -> Examined:
        examined = self._read(("examine", from_video), source, partial(
            self.packager.examine_audio, source, from_video=from_video, info=info))
        return replace(examined, source=source)

    def package_video(self, source: Path, out_dir: Path, on_segment: OnSegment | None = None,
                      on_progress: OnProgress | None = None, *,
                      info: MediaInfo | None = None) -> MediaInfo:
        return self.packager.package_video(source, out_dir, on_segment, on_progress, info=info)

    def encode_audio(self, examined: Examined, out_dir: Path, *, segments: Sequence[float],
                     on_segment: OnSegment | None = None,
                     on_progress: OnProgress | None = None) -> MediaInfo:
        return self.packager.encode_audio(examined, out_dir, segments=segments,
                                          on_segment=on_segment, on_progress=on_progress)

    def extract_audio(self, source: Path, dest: Path, *,
                      info: MediaInfo | None = None) -> Path:
        return self.packager.extract_audio(source, dest, info=info)
