"""Plan -> apply -> plan through the packager seam, without ffmpeg: a canned Packager
(fake_packager.py) against the local directory store. Packaging itself is tested with real
ffmpeg elsewhere (test_packaging.py, test_loudness.py, test_reconcile_s3.py); here what is under
test is apply's order and containment: it converges, and a packaging failure publishes nothing
half-way (master never names an object that is not there)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from fake_packager import FakePackager
from manual_clock import ManualClock

from reconciler import engine, layout
from reconciler.apply import apply_plan
from reconciler.hls import parse_media
from reconciler.inputs.reader import InputReader
from reconciler.observe import observe
from reconciler.planner import make_plan
from reconciler.results import Step
from reconciler.runtime import Runtime
from reconciler.store.local import LocalStore

SID = 21


@pytest.fixture
def no_ffmpeg(tmp_path, monkeypatch) -> None:
    """A PATH without ffmpeg or ffprobe: any attempt to run them would fail the apply."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("ffmpeg") is None and shutil.which("ffprobe") is None


@pytest.fixture
def manifest(tmp_path) -> Path:
    """Section 21: its video (spoken Korean) and an English audio file, in a repository."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "lecture.mp4").write_bytes(b"not really a video: the packager is canned")
    (root / "en.m4a").write_bytes(b"not really audio either")
    path = root / "section.yaml"
    path.write_text(yaml.safe_dump({"sectionId": SID, "video": "lecture.mp4", "languages": [
        {"code": "ko", "audio": "source"}, {"code": "en", "audio": "en.m4a"}]}))
    return path


def named_by_master(store: LocalStore) -> list[str]:
    """Every key master names, and every key the media playlists it names name in turn."""
    prefix = layout.section_prefix(SID)
    got = store.get(layout.master_key(SID))
    assert got is not None, "no master.m3u8"
    text = got[0].decode()
    playlists = re.findall(r'URI="([^"]+)"', text) + [
        line for line in text.splitlines() if line and not line.startswith("#")]
    keys = [prefix + uri for uri in playlists]
    for key in list(keys):
        body = store.get(key)
        if body is None:
            continue  # missing: reported by the caller
        folder = key.rsplit("/", 1)[0] + "/"
        playlist = parse_media(body[0].decode())
        keys += [folder + s.uri for s in playlist.segments]
        keys += [folder + playlist.map_uri] if playlist.map_uri else []
    return keys


def test_plan_apply_plan_converges_with_a_canned_packager(tmp_path, no_ffmpeg, manifest):
    store = LocalStore(tmp_path / "store")
    packager, inputs = FakePackager(), InputReader()
    sections = engine.load([manifest])
    observed = observe(store, sections, inputs=inputs)
    plan = make_plan(sections, observed)
    assert plan.has_changes
    rt = Runtime(store=store, tmp_dir=tmp_path / "work", packager=packager, inputs=inputs)
    [result] = apply_plan(plan, {SID: sections[0]}, observed, rt)

    assert result.ok and result.master_written, result.failures
    assert result.languages_ready == ["ko", "en"]
    assert sorted(packager.calls) == [("encode_audio", "en.m4a"),
                                      ("encode_audio", "lecture.mp4"),
                                      ("examine_audio", "en.m4a"),
                                      ("examine_audio", "lecture.mp4"),
                                      ("package_video", "lecture.mp4"),
                                      ("probe", "lecture.mp4")]  # once, for all its steps
    named = named_by_master(store)
    assert len(named) == 3 + 3 * 3  # 3 playlists; each an init and two segments
    assert [k for k in named if store.head(k) is None] == []
    packager.calls.clear()
    again = make_plan(sections, observe(store, sections, inputs=inputs))
    assert not again.has_changes, again.sections
    assert packager.calls == []


@pytest.mark.parametrize("broken", ["en.m4a", "lecture.mp4"])
def test_a_packaging_failure_publishes_nothing_half_way(tmp_path, no_ffmpeg, manifest, broken):
    """The canned packager fails on one input after handing segments over early (they were
    uploaded while it ran). A failed language leaves no object behind and master lists the
    others; a failed video leaves the section empty (no master). The next apply with a working
    packager converges, and the plan after it is empty."""
    url = f"file://{tmp_path / 'store'}"
    settings = engine.Settings(store_url=url, tmp_dir=tmp_path / "work")
    sections = engine.load([manifest])
    failing = FakePackager(duration=12.0, fails={broken})  # three segments: two go out early
    outcome = engine.Reconciler(settings, packager=failing).apply(sections)

    [result] = outcome.results
    [failure] = result.failures
    store = LocalStore(tmp_path / "store")
    if broken == "en.m4a":
        assert (failure.step, failure.language) == (Step.PACKAGE_AUDIO, "en")
        assert store.list(layout.audio_dir(SID, "en")) == {}
        assert result.languages_ready == ["ko"]
        named = named_by_master(store)
        assert [k for k in named if store.head(k) is None] == []
        assert not any(k.startswith(layout.audio_dir(SID, "en")) for k in named)
    else:
        assert (failure.step, failure.language) == (Step.PACKAGE_VIDEO, None)
        assert store.list(layout.section_prefix(SID)) == {}
    assert "canned failure" in failure.message
    assert len(failing.handed) >= 2  # uploaded early, then deleted again

    working = engine.Reconciler(settings, packager=FakePackager(duration=12.0))
    assert working.apply(sections).ok
    assert not working.plan(sections)[0].has_changes
    assert [k for k in named_by_master(store) if store.head(k) is None] == []


def test_a_many_section_apply_settles_once_not_once_per_section(tmp_path, no_ffmpeg, manifest):
    """Recording the state index waits until the LastModified tick of the run's last write is
    over (the store's timestamp resolution after it): one wait for the whole run, however many
    sections, on a clock the test drives."""
    clock = ManualClock()
    text = manifest.read_text()
    for sid in (31, 32, 33, 34):
        (manifest.parent / f"s{sid}.yaml").write_text(text.replace(f"sectionId: {SID}",
                                                                   f"sectionId: {sid}"))
    manifest.unlink()
    store = LocalStore(tmp_path / "store")
    packager, inputs = FakePackager(), InputReader()
    sections = engine.load(sorted(manifest.parent.glob("s*.yaml")))
    observed = observe(store, sections, inputs=inputs)
    rt = Runtime(store=store, tmp_dir=tmp_path / "work", packager=packager, inputs=inputs,
                 clock=clock)
    results = apply_plan(make_plan(sections, observed), {s.section_id: s for s in sections},
                         observed, rt)
    assert len(results) == 4 and all(r.ok for r in results)
    assert clock.waits == [pytest.approx(store.timestamp_resolution)]
    assert not make_plan(sections, observe(store, sections, inputs=inputs)).has_changes


def test_observe_reads_what_an_input_holds_through_the_packager_it_is_handed(tmp_path, no_ffmpeg,
                                                                             manifest):
    """A dubbed section whose video is not packaged yet needs the video's length before the
    plan: observe asks the Packager it is handed (here canned: no ffprobe on PATH), never
    ffprobe itself; without a Packager it says which seam is missing."""
    data = yaml.safe_load(manifest.read_text())
    data["languages"].append({"code": "ja"})  # no audio: dubbed
    manifest.write_text(yaml.safe_dump(data))
    sections = engine.load([manifest])
    store = LocalStore(tmp_path / "store")
    packager = FakePackager(duration=42.0)

    observed = observe(store, sections, inputs=InputReader(), packager=packager)

    assert observed[SID].video_duration == 42.0
    assert packager.calls == [("probe", "lecture.mp4")]
    with pytest.raises(TypeError, match="Packager"):
        observe(store, sections, inputs=InputReader())


def test_the_runs_second_observe_reads_the_video_again_only_when_its_bytes_changed(
        tmp_path, no_ffmpeg, manifest):
    """An apply observes twice (before and under its locks). The second reuses the first's
    read of the video while the video's identity, read again, is the same (a remote video is
    not downloaded again), and equals what a fresh read finds; a changed video is read again."""
    data = yaml.safe_load(manifest.read_text())
    data["languages"].append({"code": "ja"})  # no audio: dubbed, so the plan needs the length
    manifest.write_text(yaml.safe_dump(data))
    sections = engine.load([manifest])
    store, inputs = LocalStore(tmp_path / "store"), InputReader()
    packager = FakePackager(duration=42.0)
    first = observe(store, sections, inputs=inputs, packager=packager)

    again = observe(store, sections, inputs=inputs, packager=packager, previous=first)
    assert packager.calls == [("probe", "lecture.mp4")]
    fresh = observe(store, sections, inputs=inputs, packager=packager)
    assert again[SID].video_duration == fresh[SID].video_duration == 42.0

    video = manifest.parent / "lecture.mp4"
    video.write_bytes(video.read_bytes() + b", second cut")
    packager.duration, packager.calls = 43.0, []
    changed = observe(store, sections, inputs=inputs, packager=packager, previous=first)
    assert changed[SID].video_input != first[SID].video_input
    assert changed[SID].video_duration == 43.0
    assert packager.calls == [("probe", "lecture.mp4")]
