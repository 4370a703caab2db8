"""Local inputs are identified by sha256, hashed once per content: the digest is kept with the
file's size and mtime_ns in $RECONCILER_CACHE_DIR (else $XDG_CACHE_HOME/reconciler) and
trusted only while both match."""

from __future__ import annotations

import json
import os
import time
from hashlib import sha256
from pathlib import Path

from reconciler.inputs.reader import HashCache, InputReader
from reconciler.manifest import Source


def _file(path: Path, body: bytes, age: float) -> Path:
    path.write_bytes(body)
    then = time.time_ns() - int(age * 1e9)
    os.utime(path, ns=(then, then))
    return path


def test_an_unchanged_input_is_not_hashed_again_and_a_changed_one_is(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache"))
    lecture = _file(tmp_path / "lecture.mp4", b"a" * 1000, age=60)
    source = Source("file", "lecture.mp4", lecture)
    real = f"sha256:{sha256(b'a' * 1000).hexdigest()}"
    assert InputReader().identify(source).identity == real
    saved = json.loads((tmp_path / "cache" / "input-hashes.json").read_text())
    stat = lecture.stat()
    assert saved[str(lecture.resolve())][:3] == [stat.st_size, stat.st_mtime_ns, real]

    # Another run (a fresh cache in memory) trusts the record while size and mtime match:
    # it does not read the file (here: a record it could not have computed).
    saved[str(lecture.resolve())][2] = "sha256:recorded"
    (tmp_path / "cache" / "input-hashes.json").write_text(json.dumps(saved))
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache2"))
    (tmp_path / "cache2").mkdir()
    (tmp_path / "cache2" / "input-hashes.json").write_text(json.dumps(saved))
    assert InputReader().identify(source).identity == "sha256:recorded"

    # Same size, new content, new mtime: hashed again.
    _file(lecture, b"b" * 1000, age=30)
    assert InputReader().identify(source).identity == f"sha256:{sha256(b'b' * 1000).hexdigest()}"


def test_a_corrupt_cache_is_ignored_and_a_just_written_file_is_not_trusted(tmp_path):
    where = tmp_path / "hashes.json"
    where.write_text("{not json")
    fresh = _file(tmp_path / "en.mp3", b"x" * 10, age=0)
    cache = HashCache(where)
    real = f"sha256:{sha256(b'x' * 10).hexdigest()}"
    assert cache.digest(fresh) == real
    # Hashed within the racy window of its mtime: a same-size write in the same clock tick
    # could go unseen, so the record is not trusted yet (the file is read again).
    stat = fresh.stat()
    fresh.write_bytes(b"y" * 10)
    os.utime(fresh, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert HashCache(where).digest(fresh) == f"sha256:{sha256(b'y' * 10).hexdigest()}"


def test_many_new_inputs_rewrite_the_cache_file_once_per_interval_not_once_each(tmp_path):
    """A first plan over a large catalogue hashes every input: the cache file is written when
    the first is hashed, then at most every SAVE_EVERY seconds, and completely by flush()."""
    now = [0.0]
    where = tmp_path / "hashes.json"
    cache = HashCache(where, clock=lambda: now[0])
    files = [_file(tmp_path / f"{i}.mp3", bytes([i]) * 10, age=60) for i in range(50)]
    for path in files:
        cache.digest(path)
    assert len(json.loads(where.read_text())) == 1  # written for the first, not for each
    now[0] += HashCache.SAVE_EVERY
    cache.digest(_file(tmp_path / "late.mp3", b"z", age=60))
    assert len(json.loads(where.read_text())) == 51
    cache.digest(_file(tmp_path / "last.mp3", b"w", age=60))
    cache.flush()
    saved = json.loads(where.read_text())
    assert len(saved) == 52 and HashCache(where).entries == saved


def test_the_cache_file_keeps_this_runs_files_and_the_newest_others(tmp_path, monkeypatch):
    """Bounded at MAX_ENTRIES: a run's own inputs always stay (so a catalogue larger than the
    bound is not hashed again every run), then the most recently hashed of the rest; every
    entry kept is still the file's true digest."""
    monkeypatch.setattr(HashCache, "MAX_ENTRIES", 4)
    where = tmp_path / "hashes.json"
    old = [_file(tmp_path / f"old{i}.mp3", bytes([i]) * 10, age=60) for i in range(5)]
    first = HashCache(where)
    for path in old:
        first.digest(path)
    first.flush()
    assert len(json.loads(where.read_text())) == 5  # this run asked about all five

    second = HashCache(where)
    mine = [_file(tmp_path / f"new{i}.mp3", bytes([100 + i]) * 10, age=60) for i in range(2)]
    for path in mine:
        second.digest(path)
    second.digest(old[0])  # asked about again (a hit): stays though hashed first
    second.flush()
    saved = json.loads(where.read_text())
    expected = {str(p.resolve()) for p in [*mine, old[0], old[4]]}
    assert set(saved) == expected
    for name, entry in saved.items():
        assert entry[2] == f"sha256:{sha256(Path(name).read_bytes()).hexdigest()}"

    (tmp_path / "odd.json").write_text(json.dumps({"x": "not an entry", "y": [1, 2, 3, "z"]}))
    monkeypatch.setattr(HashCache, "MAX_ENTRIES", 2)
    odd = HashCache(tmp_path / "odd.json")
    odd.digest(mine[0])
    odd.flush()  # entries of other shapes count as the oldest, and nothing breaks
    kept = json.loads((tmp_path / "odd.json").read_text())
    assert len(kept) == 2 and str(mine[0].resolve()) in kept
