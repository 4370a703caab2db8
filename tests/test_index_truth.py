"""The state index records what an apply left, observed, never what it meant to write: another
writer that copies (CopyObject with new headers), overwrites or deletes any key of the section at
any moment of an apply never makes the next plain `--plan` disagree with `--plan --deep`. The
other writer is real: a second store client on the same directory or moto bucket, acting when
this run makes its Nth write (tests/test_index_truth.py). Packaging is the canned packager
(fake_packager.py): what is under test is what the index records, not ffmpeg."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import yaml
from fake_packager import FakePackager
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manual_clock import ManualClock

from reconciler import engine, layout
from reconciler.inputs.reader import InputReader
from reconciler.observe import observe
from reconciler.planner import make_plan
from reconciler.state import load_index, update_index
from reconciler.store import Store, open_store

SID = 41
OTHER_META = layout.ObjectMeta("text/plain", "no-cache")
KO = [{"code": "ko", "audio": "source", "default": True}]
KO_EN = [*KO, {"code": "en", "audio": "en.m4a"}]


class OtherWriter:
    """The store as this run writes to it; just before the write for which `when(n, key)` is
    first true (n counts this run's writes), `act` runs: another writer on the same store."""

    def __init__(self, inner: Store, when: Callable[[int, str], bool],
                 act: Callable[[], None]) -> None:
        self.inner, self.url = inner, inner.url
        self.when, self.act = when, act
        self.writes = 0
        self.acted = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _before(self, key: str) -> None:
        self.writes += 1
        if not self.acted and self.when(self.writes, key):
            self.acted = True
            self.act()

    def put_file(self, key, path, meta, **progress):
        self._before(key)
        return self.inner.put_file(key, path, meta, **progress)

    def put_bytes(self, key, body, meta, **conditions):
        self._before(key)
        return self.inner.put_bytes(key, body, meta, **conditions)

    def set_meta(self, key, meta):
        self._before(key)
        return self.inner.set_meta(key, meta)

    def delete(self, keys):
        self._before(keys[0] if keys else "")
        return self.inner.delete(keys)


def copy(store: Store, key: str) -> None:
    """A metadata repair by another tool: CopyObject onto itself, new headers, same bytes."""
    store.set_meta(key, OTHER_META.stamped({"by": "another-tool"}))


def overwrite(store: Store, key: str) -> None:
    """Another tool's PUT: a playlist then names a segment that does not exist; anything else
    gets other bytes and other headers."""
    got = store.get(key)
    if key.endswith(".m3u8") and got is not None:
        body = got[0].replace(b"#EXT-X-ENDLIST", b"#EXTINF:4.0,\nx_999.m4s\n#EXT-X-ENDLIST")
        store.put_bytes(key, body, layout.PLAYLIST_META.stamped(got[1].meta.user_metadata))
    else:
        store.put_bytes(key, b"another tool's bytes", OTHER_META)


def delete(store: Store, key: str) -> None:
    store.delete([key])


ACTIONS = {"copy": copy, "overwrite": overwrite, "delete": delete}


class World:
    """One store (a fresh directory or moto bucket) and a repository declaring section 41."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        (root / ".git").mkdir(parents=True, exist_ok=True)
        (root / "lecture.mp4").write_bytes(b"canned: the packager is a stand-in")
        (root / "en.m4a").write_bytes(b"canned audio")

    def declare(self, languages: list[dict]) -> list:
        path = self.root / "section.yaml"
        path.write_text(yaml.safe_dump({"sectionId": SID, "video": "lecture.mp4",
                                        "languages": languages}))
        return engine.load([path])

    def reconciler(self, store: Store | None = None, deep: bool = False) -> engine.Reconciler:
        settings = engine.Settings.from_env(self.url, tmp_dir=self.root / "tmp", deep=deep)
        return engine.Reconciler(settings, store=store or open_store(self.url),
                                 packager=FakePackager())

    def apply_disturbed(self, sections: list, when: Callable[[int, str], bool],
                        act: Callable[[Store], None]) -> OtherWriter:
        other = open_store(self.url)  # a second client: the other writer's own
        store = OtherWriter(open_store(self.url), when, lambda: act(other))
        self.reconciler(store).apply(sections)
        return store

    def plans(self, sections: list):
        """(plain --plan, --plan --deep) as they are now."""
        return (self.reconciler().plan(sections)[0],
                self.reconciler(deep=True).plan(sections)[0])


def local_world(tmp: Path) -> World:
    return World(f"file://{tmp / 'store'}", tmp / "repo")


def moto_world(tmp: Path) -> World:
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
    return World(f"s3://{bucket}", tmp / "repo")


WORLDS = {"local": local_world, "moto": moto_world}


def actions(plan) -> set:
    return {(a.type, a.language, a.keys) for sp in plan.sections for a in sp.actions}


@pytest.fixture(params=["local", "moto"])
def world(request, tmp_path) -> World:
    if request.param == "moto":
        request.getfixturevalue("moto_server")
    return WORLDS[request.param](tmp_path)


# -- the three reproductions of issue 19 item 1 ---------------------------------------------


def test_a_copy_object_on_a_segment_during_the_apply_is_in_the_next_plain_plan(world):
    """Another tool's CopyObject (new Content-Type) on a segment the run had just uploaded,
    before the run sealed it with its playlist: LIST shows the ETag the run wrote."""
    sections = world.declare(KO_EN)
    segment = layout.audio_dir(SID, "en") + "a_000.m4s"
    world.apply_disturbed(sections, lambda _, key: key == layout.audio_dir(SID, "en")
                          + layout.AUDIO_PLAYLIST, lambda other: copy(other, segment))
    plain, deep = world.plans(sections)
    assert plain.has_changes and actions(plain) == actions(deep)


def test_a_copy_object_that_keeps_the_old_timestamp_is_in_the_next_plain_plan(tmp_path):
    """The same copy by a tool that keeps modification times (rsync -t, cp -p), as a copy made
    seconds before the run's last write looks: only a HEAD of what the run wrote sees it."""
    world = local_world(tmp_path)
    sections = world.declare(KO_EN)
    segment = layout.audio_dir(SID, "en") + "a_000.m4s"
    root = Path(world.url.removeprefix("file://"))

    def copy_keeping_time(other: Store) -> None:
        copy(other, segment)
        for path in (root / segment, root / ".meta" / (segment + ".json")):
            os.utime(path, (path.stat().st_mtime - 5, path.stat().st_mtime - 5))

    world.apply_disturbed(sections, lambda _, key: key == layout.audio_dir(SID, "en")
                          + layout.AUDIO_PLAYLIST, copy_keeping_time)
    plain, deep = world.plans(sections)
    assert plain.has_changes and actions(plain) == actions(deep)


def test_a_playlist_overwritten_during_the_apply_is_in_the_next_plain_plan(world):
    """Another tool overwrites a playlist the run wrote (it now names a segment that does not
    exist) before the run writes master."""
    sections = world.declare(KO_EN)
    playlist = layout.audio_dir(SID, "en") + layout.AUDIO_PLAYLIST
    world.apply_disturbed(sections, lambda _, key: key == layout.master_key(SID),
                          lambda other: overwrite(other, playlist))
    plain, deep = world.plans(sections)
    assert plain.has_changes and actions(plain) == actions(deep)


def test_an_object_the_apply_did_not_touch_changed_during_it_is_in_the_next_plain_plan(world):
    """Adding en to a converged section leaves the video alone; another tool's CopyObject on a
    video segment meanwhile must not be recorded as what the run saw before."""
    world.reconciler().apply(world.declare(KO))
    sections = world.declare(KO_EN)
    segment = layout.video_dir(SID) + "v_000.m4s"
    world.apply_disturbed(sections, lambda _, key: key == layout.master_key(SID),
                          lambda other: copy(other, segment))
    plain, deep = world.plans(sections)
    assert plain.has_changes and actions(plain) == actions(deep)


# -- the property ------------------------------------------------------------------------


def _property(make_world: Callable[[Path], World], start: str, at: int, action: str,
              pick: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(Path(tmp))
        if start == "add":
            world.reconciler().apply(world.declare(KO))
        sections = world.declare(KO_EN)
        prefix = layout.section_prefix(SID)

        def act(other: Store) -> None:
            keys = sorted(other.list(prefix))
            if keys:
                ACTIONS[action](other, keys[pick % len(keys)])

        world.apply_disturbed(sections, lambda n, _: n == at, act)
        plain, deep = world.plans(sections)
        assert plain == deep, (actions(plain), actions(deep))


PROPERTY = dict(start=st.sampled_from(["new", "add"]), at=st.integers(1, 24),
                action=st.sampled_from(sorted(ACTIONS)), pick=st.integers(0, 99))


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**PROPERTY)
def test_plain_and_deep_plans_agree_whatever_another_writer_does_local(start, at, action,
                                                                       pick):
    _property(local_world, start, at, action, pick)


@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**PROPERTY)
def test_plain_and_deep_plans_agree_whatever_another_writer_does_moto(moto_server, start, at,
                                                                      action, pick):
    _property(moto_world, start, at, action, pick)


# -- item 2: a record that disagrees with itself is not used --------------------------------


def _spoil_playlist(record: dict) -> None:
    """The en playlist names a segment its objects do not hold (problems still say none)."""
    playlist = record["renditions"]["audio/en"]["playlist"]
    playlist[3].append("a_999.m4s")
    playlist[4].append(4.0)


def _spoil_folders(record: dict) -> None:
    del record["renditions"]["audio/en"]  # objects under audio/en/ but no rendition


def _spoil_master(record: dict) -> None:
    record["master"] = None  # master is listed, its text unknown


def _spoil_track(record: dict) -> None:
    record["renditions"]["video"]["track"] = None  # init listed and read, no track, no problem


def _spoil_types(record: dict) -> None:
    record["renditions"]["video"]["playlist"][0] = "four"  # a target duration that is text


def _spoil_headers(record: dict) -> None:
    record["headers"]["video/video.m3u8"].insert(0, "text/plain")  # one header too many


@pytest.mark.parametrize("spoil", [_spoil_playlist, _spoil_folders, _spoil_master,
                                   _spoil_track, _spoil_types, _spoil_headers])
def test_a_record_that_disagrees_with_itself_is_ignored_not_a_crash(tmp_path, spoil):
    world = local_world(tmp_path)
    sections = world.declare(KO_EN)
    assert world.reconciler().apply(sections).ok
    store = open_store(world.url)
    record = load_index(store)[SID]
    spoil(record)
    update_index(store, {SID: record})
    plan, _ = world.reconciler().plan(sections)  # was a KeyError in hls.bitrates
    assert not plan.has_changes
    assert not observe(store, sections, inputs=InputReader())[SID].indexed  # read in full


def test_a_record_of_headers_as_older_versions_wrote_it_is_used_and_equals_a_full_read(
        tmp_path):
    """An object's headers are recorded as [Content-Type, Cache-Control, SSE, user metadata],
    null for a header the object lacks, as older versions wrote them: such a record is used,
    and what it rebuilds is what a full read finds (here: a segment stored without headers,
    which both plans fix)."""
    world = local_world(tmp_path)
    sections = world.declare(KO_EN)
    assert world.reconciler().apply(sections).ok
    store = open_store(world.url)
    record = load_index(store)[SID]
    cut = len(layout.section_prefix(SID))
    playlist = layout.audio_dir(SID, "en") + layout.AUDIO_PLAYLIST
    meta = store.head(playlist).meta
    assert record["headers"][playlist[cut:]] == [meta.content_type, meta.cache_control,
                                                 meta.sse, dict(meta.user_metadata)]

    segment = layout.audio_dir(SID, "en") + "a_000.m4s"
    Path(world.url.removeprefix("file://"), ".meta", segment + ".json").unlink()
    info = store.list(segment)[segment]
    record["objects"][segment[cut:]] = [info.etag, info.size, info.last_modified.timestamp()]
    record["headers"][segment[cut:]] = [None, None, None, {}]
    update_index(store, {SID: record})

    indexed = observe(store, sections, inputs=InputReader())[SID]
    read = observe(store, sections, inputs=InputReader(), deep=True)[SID]
    assert indexed.indexed and not read.indexed
    assert indexed.objects[segment] == read.objects[segment]
    plain, deep = world.plans(sections)
    assert actions(plain) == actions(deep) == {("fix_metadata", "en", (segment,))}


# -- from_record applies a full read's checks: the seal rule --------------------------------


def test_a_record_that_leaves_unsealed_headers_unknown_is_not_used(tmp_path):
    """A record that lists a segment changed after its playlist (LastModified not older than
    the seal) without its headers claims more than a full read, which HEADs it."""
    world = local_world(tmp_path)
    sections = world.declare(KO_EN)
    assert world.reconciler().apply(sections).ok
    store = open_store(world.url)
    segment = layout.audio_dir(SID, "en") + "a_000.m4s"
    copy(store, segment)
    record = load_index(store)[SID]
    rel = segment[len(layout.section_prefix(SID)):]
    info = store.list(segment)[segment]
    record["objects"][rel] = [info.etag, info.size, info.last_modified.timestamp()]
    del record["headers"][rel]
    update_index(store, {SID: record})
    observed = observe(store, sections, inputs=InputReader())
    assert not observed[SID].indexed
    plan = make_plan(sections, observed)
    assert ("fix_metadata", "en") in {(a.type, a.language) for sp in plan.sections
                                      for a in sp.actions}


def test_an_undisturbed_apply_is_recorded_from_what_it_wrote(world):
    """Without another writer the section is recorded from what the run wrote (no GET of
    master, playlists or inits, as a deep read would make), is used next time (one LIST and
    one GET) and matches a deep read."""
    sections = world.declare(KO_EN)
    reads: list[str] = []
    store = OtherWriter(open_store(world.url), lambda *_: False, lambda: None)
    store.get = lambda key: reads.append(key) or store.inner.get(key)
    assert world.reconciler(store).apply(sections).ok
    assert not [key for key in reads if key.startswith(layout.section_prefix(SID))]
    observed = observe(open_store(world.url), sections, inputs=InputReader())
    assert observed[SID].indexed
    plain, deep = world.plans(sections)
    assert not plain.has_changes and plain == deep


# -- item 7: the settle wait is a seam: the store's resolution, a driven clock, the CDN -------


class SlowCdn:
    """A real CDN (moto's CloudFront) whose request takes `seconds` on the test's clock; it
    notes when it was asked, next to the store's index writes."""

    def __init__(self, inner, clock: ManualClock, seconds: float, events: list[str]) -> None:
        self.inner, self.clock, self.seconds, self.events = inner, clock, seconds, events
        self.description = inner.description

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def invalidate(self, paths, caller_reference):
        self.events.append("invalidate")
        self.clock.advance(self.seconds)
        return self.inner.invalidate(paths, caller_reference)


class IndexWrites:
    """The store, noting each write of the state index."""

    def __init__(self, inner: Store, events: list[str]) -> None:
        self.inner, self.url, self.events = inner, inner.url, events

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_bytes(self, key, body, meta, **conditions):
        if key == layout.STATE_INDEX_KEY:
            self.events.append("index")
        return self.inner.put_bytes(key, body, meta, **conditions)


def test_against_s3_the_settle_wait_overlaps_the_invalidation(tmp_path, bucket, distribution):
    """S3 stamps LastModified in whole seconds: the index is recorded a second after the last
    write, and the invalidation request (0.4 s here) is made during that second."""
    from reconciler.cdn import open_cdn

    world = World(f"s3://{bucket}", tmp_path / "repo")
    sections = world.declare(KO_EN)
    clock, events = ManualClock(), []
    store = IndexWrites(open_store(world.url), events)
    settings = engine.Settings.from_env(world.url, tmp_dir=tmp_path / "tmp")
    cdn = SlowCdn(open_cdn(world.url, distribution), clock, 0.4, events)
    outcome = engine.Reconciler(settings, store=store, cdn=cdn, packager=FakePackager(),
                                clock=clock).apply(sections)
    assert outcome.ok and outcome.invalidation is not None
    assert store.timestamp_resolution == 1.0
    assert events == ["invalidate", "index"]
    assert clock.waits == [pytest.approx(0.6)]  # 1 s after the last write, 0.4 s of it spent


def test_the_local_store_needs_no_settle_worth_the_name(tmp_path):
    """A directory's timestamps are finer than a hundredth of a second: an apply whose
    recording starts that long after its last write does not wait at all."""
    world = local_world(tmp_path)
    sections = world.declare(KO_EN)
    clock = ManualClock()
    from reconciler.cdn import open_cdn

    slow = SlowCdn(open_cdn(world.url), clock, 0.02, [])
    settings = engine.Settings.from_env(world.url, tmp_dir=tmp_path / "tmp")
    outcome = engine.Reconciler(settings, cdn=slow, packager=FakePackager(),
                                clock=clock).apply(sections)
    assert outcome.ok and open_store(world.url).timestamp_resolution <= 0.01
    assert clock.waits == []
    assert observe(open_store(world.url), sections, inputs=InputReader())[SID].indexed


@pytest.mark.parametrize("size", [1000, 6 * 1024 * 1024])
def test_every_write_returns_the_etag_a_list_then_shows(world, monkeypatch, tmp_path, size):
    """put_file (single-part and multipart: its ETag is not the body's MD5), put_bytes and
    set_meta answer with the identity the next LIST lists."""
    monkeypatch.setenv("RECONCILER_MULTIPART_THRESHOLD", str(5 * 1024 * 1024))
    store = open_store(world.url)
    body = tmp_path / "body"
    body.write_bytes(os.urandom(size))
    prefix = layout.section_prefix(SID)
    etags = {prefix + "file": store.put_file(prefix + "file", body, OTHER_META),
             prefix + "bytes": store.put_bytes(prefix + "bytes", b"small", OTHER_META)}
    assert {key: info.etag for key, info in store.list(prefix).items()} == etags
    assert ("-" in etags[prefix + "file"]) == (size > 5 * 1024 * 1024 and "s3" in world.url)
    copied = store.set_meta(prefix + "file", layout.SEGMENT_META)
    assert copied == store.list(prefix + "file")[prefix + "file"].etag
