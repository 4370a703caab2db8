"""Lip sync and segment timing of what is published, measured as an MSE player presents it.

A source that flashes and clicks at the same instants every second (x264 B-frames, AAC priming)
is published through the real engine with its own audio, a supplied .m4a and a supplied .mp3 at
44.1 kHz (what a dub is once downloaded; media_helpers.flash_click_section); the published
fragments are decoded and timed from their own timestamps, never from edit lists. The three
players in Chromium play the same section in test_players.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from media_helpers import (
    BEDS,
    event_times,
    flash_click_section,
    make_flash_click_video,
    presented_clicks,
    presented_flashes,
    publish,
)

from reconciler import hls, layout, samples
from reconciler.packager import AUDIO_RATE, ffmpeg

SECTION = 7
SECONDS = 12
SYNC = 0.010  # |audio - video| a viewer never notices (lip sync needs well under 45 ms)
AAC_FRAME = 1024 / AUDIO_RATE
LANGUAGES = list(BEDS)  # ko: the video's own track, en: a supplied .m4a, ja: a .mp3 (a dub)


@pytest.fixture(scope="module")
def store() -> Path:
    return flash_click_section(SECTION, SECONDS)


def rendition(store: Path, language: str | None) -> Path:
    return store / layout.rendition_dir(SECTION, language)


def playlist(store: Path, language: str | None) -> hls.MediaPlaylist:
    return hls.parse_media((rendition(store, language) / layout.playlist_name(language))
                           .read_text())


def test_the_first_picture_is_at_zero_and_each_flash_where_the_source_has_it(store):
    """The B-frames' composition delay is not let through (it was 83 ms: 5.083 s for 5 s)."""
    flashes = presented_flashes(rendition(store, None))
    assert flashes == pytest.approx(event_times(SECONDS), abs=0.001)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_clicks_with_the_flash(store, language):
    """Audio lands where it was relative to the picture, whatever the input: the video's own
    track, a supplied file, a dub (before: every click 62 ms ahead of its flash)."""
    flashes = presented_flashes(rendition(store, None))
    clicks = presented_clicks(rendition(store, language))
    assert len(clicks) == len(flashes), (clicks, flashes)
    offsets = [round(click - flash, 4) for click, flash in zip(clicks, flashes, strict=True)]
    assert all(abs(offset) <= SYNC for offset in offsets), offsets


@pytest.mark.parametrize("language", LANGUAGES)
def test_audio_segments_start_and_end_with_the_videos(store, language):
    """No stray one-frame segment at the end (it was 12.032 s of audio for 12 s of video): the
    audio's segments start within one AAC frame after the video's and end with it."""
    video = playlist(store, None)
    audio = playlist(store, language)
    assert len(audio.segments) == len(video.segments), audio.segments
    ends = [(sum(s.duration for s in p.segments[: k + 1])) for p in (video, audio)
            for k in range(len(p.segments))]
    video_ends, audio_ends = ends[: len(video.segments)], ends[len(video.segments):]
    for video_end, audio_end in zip(video_ends, audio_ends, strict=True):
        assert 0 <= audio_end - video_end < AAC_FRAME + 1e-6, (video_ends, audio_ends)


def test_audio_follows_a_long_gop_video(tmp_path):
    """Video copied with 5 s keyframe intervals has 5 s segments (not -hls_time's 4): the audio
    is cut with it, not every 4 s on its own."""
    lecture = samples.make_video(tmp_path / "long-gop.mp4", seconds=10, size="160x90",
                                 gop_seconds=5)
    ffmpeg.package_video(lecture, tmp_path / "video")
    video = hls.parse_media((tmp_path / "video" / layout.VIDEO_PLAYLIST).read_text())
    ffmpeg.encode_audio(ffmpeg.examine_audio(lecture, from_video=True), tmp_path / "audio",
                       segments=[s.duration for s in video.segments])
    audio = hls.parse_media((tmp_path / "audio" / layout.AUDIO_PLAYLIST).read_text())
    assert [s.duration for s in video.segments] == [5.0, 5.0]
    assert [s.duration for s in audio.segments] == pytest.approx([5.0, 5.0], abs=AAC_FRAME)


def needed_peak(video: tuple[hls.MediaPlaylist, dict[str, int]],
                audio: tuple[hls.MediaPlaylist, dict[str, int]]) -> float:
    """The peak bit rate a player needs: over each video segment, the bits of that segment and
    of the audio it plays with (each audio segment's bytes spread over its time), per second.
    Independent of how the audio happens to be cut."""
    def spans(playlist: hls.MediaPlaylist, sizes: dict[str, int]):
        start = 0.0
        for seg in playlist.segments:
            yield start, start + seg.duration, sizes[seg.uri]
            start += seg.duration

    audio_spans = list(spans(*audio))
    peak = 0.0
    for start, end, size in spans(*video):
        bits = 8 * size + sum(8 * a_size * max(0.0, min(end, a_end) - max(start, a_start))
                              / (a_end - a_start) for a_start, a_end, a_size in audio_spans)
        peak = max(peak, bits / (end - start))
    return peak


def test_declared_peak_bandwidth_is_what_a_low_bitrate_lecture_needs(tmp_path):
    """A slide lecture (a still picture: the video is a few kb/s, the audio most of the
    stream): BANDWIDTH is within 10 % of the peak a player needs (a one-frame last audio
    segment made it 46 % higher here, where 12 s is a whole number of segments)."""
    samples._ffmpeg(["-f", "lavfi", "-i", "color=c=0x305080:s=320x180:r=24:d=12",
                     "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "48"],
                    tmp_path / "slides.mp4")
    samples.make_tone(tmp_path / "ko.mp3", hz=300, seconds=12)
    store = publish(tmp_path, {"sectionId": SECTION, "video": "slides.mp4",
                               "languages": [{"code": "ko", "audio": "ko.mp3"}]})
    master = hls.parse_master((store / layout.master_key(SECTION)).read_text())
    [(variant, _uri)] = master.variants
    declared = int(variant["BANDWIDTH"])
    published = []
    for language in (None, "ko"):
        listed = playlist(store, language)
        folder = rendition(store, language)
        published.append((listed, {s.uri: (folder / s.uri).stat().st_size
                                   for s in listed.segments}))
    needed = needed_peak(*published)
    assert needed <= declared <= 1.10 * needed, (declared, needed)


def test_a_picture_that_starts_after_its_sound_keeps_its_offset(tmp_path):
    """The video's own track may start before the first picture (here the picture starts
    0.5 s in): the published video starts at its first picture, so the audio is cut to start
    there too and each click stays 0.5 s ahead of its flash (it had lost the 0.5 s)."""
    whole = make_flash_click_video(tmp_path / "whole.mp4", 6)
    late = samples._ffmpeg(["-i", str(whole), "-itsoffset", "0.5", "-i", str(whole),
                            "-map", "1:v", "-map", "0:a", "-c", "copy"], tmp_path / "late.mp4")
    ffmpeg.package_video(late, tmp_path / "video")
    video = hls.parse_media((tmp_path / "video" / layout.VIDEO_PLAYLIST).read_text())
    ffmpeg.encode_audio(ffmpeg.examine_audio(late, from_video=True), tmp_path / "audio",
                       segments=[s.duration for s in video.segments])
    flashes = presented_flashes(tmp_path / "video")
    clicks = presented_clicks(tmp_path / "audio")
    assert flashes == pytest.approx(event_times(6)[: len(flashes)], abs=0.001)
    offsets = [round(flash - click, 4) for click, flash in zip(clicks, flashes, strict=False)]
    assert offsets and all(abs(offset - 0.5) <= SYNC for offset in offsets), (clicks, flashes)
