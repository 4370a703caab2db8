"""Packaging overlaps uploading: finished segments are handed over while ffmpeg writes, and a
rendition that fails after some were uploaded leaves none of them behind."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler import engine, layout, samples
from reconciler.packager import ffmpeg
from reconciler.results import Step
from reconciler.samples import _ffmpeg


def test_finished_segments_are_handed_over_while_ffmpeg_writes(tmp_path):
    """Uploads overlap the encode: every segment but the last is handed over, in order, once
    ffmpeg has moved on to the next one (so it is complete: its size never changes after)."""
    src = samples.make_tone(tmp_path / "tone.m4a", hz=440, seconds=20, volume=0.2)
    handed: list[tuple[str, int]] = []
    examined = ffmpeg.examine_audio(src)
    ffmpeg.encode_audio(examined, tmp_path / "out", segments=[4.0] * 5,
                       on_segment=lambda p: handed.append((p.name, p.stat().st_size)))
    written = sorted((tmp_path / "out").glob("a_*.m4s"))
    assert len(written) >= 5
    assert [name for name, _ in handed] == [p.name for p in written[:-1]]
    assert all(size == (tmp_path / "out" / name).stat().st_size for name, size in handed)


def test_a_rendition_failing_after_early_uploads_leaves_nothing_behind(tmp_path):
    """A video cut in half whose index still promises the whole length: ffmpeg copies the first
    half (its segments are uploaded as they appear) and exits 0; the shortfall is caught
    afterwards, and the segments already uploaded are deleted again."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    whole = samples.make_video(tmp_path / "whole.mp4", seconds=24, size="320x180")
    fast = _ffmpeg(["-i", str(whole), "-c", "copy", "-movflags", "+faststart"],
                   tmp_path / "fast.mp4")
    data = fast.read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])
    (root / "section.yaml").write_text(yaml.safe_dump(
        {"sectionId": 5, "video": "cut.mp4", "languages": [{"code": "ko", "audio": "source"}]}))
    store = tmp_path / "store"
    handed: list[str] = []

    class Spying(ffmpeg.FfmpegPackager):
        """The real ffmpeg packager, watched: it notes each segment handed over early."""

        def package_video(self, source, out_dir, on_segment=None, on_progress=None, *,
                          info=None):
            def spy(path: Path) -> None:
                handed.append(path.name)
                on_segment(path)
            return super().package_video(source, out_dir, spy if on_segment else None,
                                         on_progress)

    outcome = engine.Reconciler(engine.Settings(store_url=f"file://{store}", tmp_dir=tmp_path),
                                packager=Spying()).apply(engine.load([root / "section.yaml"]))
    assert not outcome.ok
    [failure] = outcome.results[0].failures
    assert (failure.step, failure.language) == (Step.PACKAGE_VIDEO, None)
    assert str(failure).startswith("package video: ")
    assert handed  # segments did go out early ...
    left = [p for p in (store / layout.section_prefix(5)).rglob("*") if p.is_file()]
    assert left == []  # ... and none is left
