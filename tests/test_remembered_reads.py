"""What the process keeps of its probes and loudness measurements (packager/remembered.py)
equals a read of the file as it is now, whatever happens to the file in between."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from functools import partial
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.inputs.reader import HashCache
from reconciler.packager import Examined, Loudness, MediaError, MediaInfo
from reconciler.packager.ffmpeg import FfmpegPackager
from reconciler.packager.remembered import Reads, RememberedPackager

# Bodies of one size (a rewrite that keeps the size), one longer, and one the reader refuses.
BODIES = [bytes([i]) * 64 for i in range(3)] + [b"\x07" * 96, b"bad" + b"\x00" * 61]


class BytesPackager:
    """A packager whose reads are functions of the file's bytes at the moment it reads them, so
    a stale answer shows. `during_read` rewrites a file as the next read of it starts."""

    def __init__(self) -> None:
        self.reads = 0
        self.during_read: dict[Path, bytes] = {}

    def _read(self, source: Path) -> bytes:
        self.reads += 1
        if source in self.during_read:  # after the lookup, before ffmpeg would open it
            source.write_bytes(self.during_read.pop(source))
        data = source.read_bytes()
        if data.startswith(b"bad"):
            raise MediaError(f"{source.name}: unreadable")
        return data

    def probe(self, source: Path, label: str | None = None) -> MediaInfo:
        return truth_probe(self._read(source))

    def examine_audio(self, source: Path, *, from_video: bool = False,
                      info: MediaInfo | None = None) -> Examined:
        return truth_examined(self._read(source), source, from_video)


def truth_probe(data: bytes) -> MediaInfo:
    return MediaInfo(duration=len(data) + data[0] / 10, video_codec=None, width=None,
                     height=None, frame_rate=None, audio_streams=1)


def truth_examined(data: bytes, source: Path, from_video: bool) -> Examined:
    return Examined(source, truth_probe(data), Loudness(-20.0 - data[0], -3.0),
                    0.5 if from_video else 0.0)


def _write(path: Path, body: bytes, age: float) -> None:
    path.write_bytes(body)
    then = time.time_ns() - int(age * 1e9)
    os.utime(path, ns=(then, then))


OPS = st.one_of(
    st.tuples(st.just("write"), st.sampled_from("ab"), st.integers(0, len(BODIES) - 1),
              st.sampled_from([0, 5, 60])),  # 0: inside the hash cache's racy window
    st.tuples(st.just("copy"), st.sampled_from("ab"), st.sampled_from("ab")),
    st.tuples(st.just("move"), st.sampled_from("ab"), st.sampled_from("ab")),
    st.tuples(st.just("delete"), st.sampled_from("ab")),
    st.tuples(st.just("identify"), st.sampled_from("ab")),  # what observe does first
    st.tuples(st.just("hashed, then rewritten as it is read"), st.sampled_from("ab"),
              st.integers(0, len(BODIES) - 1)),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=12))
@example(ops=[("write", "a", 0, 60), ("hashed, then rewritten as it is read", "a", 1),
              ("write", "b", 0, 60), ("identify", "b")])  # kept for the old bytes' digest?
def test_every_remembered_read_equals_a_read_of_the_file_as_it_is(tmp_path_factory, ops):
    """Files are written (same size or not, inside the racy window or not), copied with their
    mtime, moved over each other, deleted, hashed, and rewritten between being hashed and
    read; after each step every remembered probe and examination equals a read of the bytes
    now there. Outside this property, as for the hash cache it keys by: a rewrite that
    restores both the old size and mtime_ns (tests/test_inputs_cache.py)."""
    folder = tmp_path_factory.mktemp("reads")
    cache = HashCache(folder / "hashes.json")
    inner = BytesPackager()
    remembered = RememberedPackager(inner, cache.known, Reads())
    paths = {name: folder / name for name in "ab"}
    for op in ops:
        kind, name = op[0], op[1]
        path = paths[name]
        if kind == "write":
            _write(path, BODIES[op[2]], op[3])
        elif kind == "copy" and path.exists() and name != op[2]:
            shutil.copy2(path, paths[op[2]])
        elif kind == "move" and path.exists():
            os.replace(path, paths[op[2]])
        elif kind == "delete":
            path.unlink(missing_ok=True)
        elif kind == "identify" and path.exists():
            cache.digest(path)
        elif kind == "hashed, then rewritten as it is read" and path.exists():
            cache.digest(path)  # observe identified it; it changes before ffmpeg reads it
            inner.during_read[path] = BODIES[op[2]]
        for each in paths.values():
            if not each.exists():
                continue
            got = _reads(remembered, each)
            data = each.read_bytes()  # after the reads: one of them may have rewritten it
            if data.startswith(b"bad"):
                assert got == ["refused"] * 3
            else:
                assert got == [truth_probe(data), truth_examined(data, each, False),
                               truth_examined(data, each, True)]


def _reads(packager: RememberedPackager, path: Path) -> list[object]:
    """Its probe and both examinations of `path`, or "refused" for each it refuses."""
    reads = [partial(packager.probe, path), partial(packager.examine_audio, path),
             partial(packager.examine_audio, path, from_video=True)]
    got: list[object] = []
    for read in reads:
        try:
            got.append(read())
        except MediaError:
            got.append("refused")
    return got


def test_a_file_the_hash_cache_does_not_know_is_read_every_time(tmp_path):
    """A fetched copy or a downloaded dub is not hashed just to look it up: read each time."""
    cache = HashCache(tmp_path / "hashes.json")
    inner = BytesPackager()
    remembered = RememberedPackager(inner, cache.known, Reads())
    path = tmp_path / "dub.mp3"
    _write(path, BODIES[0], 60)
    for _ in range(3):
        remembered.probe(path)
    assert inner.reads == 3 and cache.entries == {}


def test_reads_are_bounded_least_recently_used_first(tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    inner = BytesPackager()
    remembered = RememberedPackager(inner, cache.known, Reads(size=2))
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.mp3")
        _write(files[-1], BODIES[i], 60)
        cache.digest(files[-1])
    remembered.probe(files[0])
    remembered.probe(files[1])
    remembered.probe(files[0])  # used again: now the newer of the two
    remembered.probe(files[2])  # drops files[1]'s
    assert inner.reads == 3
    remembered.probe(files[0])
    assert inner.reads == 3
    remembered.probe(files[1])
    assert inner.reads == 4


class CountingFfmpeg(FfmpegPackager):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def probe(self, source: Path, label: str | None = None) -> MediaInfo:
        self.calls.append("probe")
        return super().probe(source, label)

    def examine_audio(self, source: Path, *, from_video: bool = False,
                      info: MediaInfo | None = None) -> Examined:
        self.calls.append("examine")
        return super().examine_audio(source, from_video=from_video, info=info)


def test_copies_of_one_lecture_are_read_once_by_ffmpeg_and_a_changed_copy_again(media,
                                                                                 tmp_path):
    """Real media: two checkouts' copies of a lecture (mtime kept, as git and copytree keep
    it) are probed and measured once; each answer equals ffmpeg's own read of that copy. A
    copy replaced by other media is read again."""
    cache = HashCache(tmp_path / "hashes.json")
    inner = CountingFfmpeg()
    remembered = RememberedPackager(inner, cache.known, Reads())
    copies = [tmp_path / "one" / "lecture.mp4", tmp_path / "two" / "lecture.mp4"]
    for copy in copies:
        copy.parent.mkdir()
        shutil.copy2(media / "lecture.mp4", copy)
        then = time.time_ns() - 60 * 10**9  # a checkout of a lecture made a while ago
        os.utime(copy, ns=(then, then))
        cache.digest(copy)  # observe identifies the inputs before anything reads them
    fresh = FfmpegPackager()
    for copy in copies:
        assert remembered.probe(copy) == fresh.probe(copy)
        assert (remembered.examine_audio(copy, from_video=True)
                == fresh.examine_audio(copy, from_video=True))
    assert inner.calls == ["probe", "examine"]

    shutil.copy2(media / "en.mp3", copies[1])
    then = time.time_ns() - 30 * 10**9
    os.utime(copies[1], ns=(then, then))
    assert cache.known(copies[1]) is None  # changed: nothing to look up until it is hashed
    assert remembered.probe(copies[1]) == fresh.probe(copies[1])
    assert cache.digest(copies[1]) == "sha256:" + hashlib.sha256(
        copies[1].read_bytes()).hexdigest()
    for _ in range(2):
        examined = remembered.examine_audio(copies[1])
        assert examined == fresh.examine_audio(copies[1]) and examined.source == copies[1]
        assert examined.info.video_codec is None
    assert inner.calls == ["probe", "examine", "probe", "examine"]
