"""Codec facts from real fMP4 init segments made by ffmpeg, and InitSegmentError (never an
IndexError, struct.error or bare ValueError) for anything that is not one."""

from __future__ import annotations

import contextlib
import struct
import subprocess
from pathlib import Path

import pytest
from fake_packager import avc1, box, init_with
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import samples
from reconciler.hls import parse_media
from reconciler.mp4 import (
    FragmentError,
    InitSegmentError,
    TrackInfo,
    read_samples,
    read_track,
    read_tracks,
    split_header,
    timescale,
)
from reconciler.packager.ffmpeg import package_video

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def ffmpeg(*args: str) -> None:
    proc = subprocess.run([*FFMPEG, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def package(source: Path, out: Path, *codec: str) -> bytes:
    """Package `source` as CMAF HLS the way the reconciler does; return init.mp4's bytes."""
    out.mkdir(parents=True)
    ffmpeg("-i", str(source), *codec, "-f", "hls", "-hls_segment_type", "fmp4",
           "-hls_fmp4_init_filename", "init.mp4",
           "-hls_segment_filename", str(out / "s_%03d.m4s"), str(out / "p.m3u8"))
    return (out / "init.mp4").read_bytes()


class Inits:
    def __init__(self, root: Path) -> None:
        high = samples.make_video(root / "high.mp4", seconds=1, size="320x180", fps=12,
                                  gop_seconds=1, tone_hz=440)
        baseline = root / "baseline.mp4"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=176x144:rate=12:duration=1",
               "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", str(baseline))
        self.video = package(high, root / "v", "-map", "0:v:0", "-c:v", "copy")
        self.baseline = package(baseline, root / "b", "-map", "0:v:0", "-c:v", "copy")
        self.audio: dict[str, bytes] = {}
        for name, extra in {
            "stereo": ["-ac", "2"],
            "mono": ["-ac", "1"],
            "5.1": ["-ac", "6"],
            "44100": ["-ac", "2", "-ar", "44100"],
            "96000": ["-ac", "2", "-ar", "96000"],
        }.items():
            self.audio[name] = package(high, root / f"a-{name}", "-map", "0:a:0", "-c:a", "aac",
                                       "-b:a", "96k", *extra)
        self.muxed = package(high, root / "va", "-map", "0:v:0", "-map", "0:a:0",
                             "-c:v", "copy", "-c:a", "aac", "-ac", "2")


@pytest.fixture(scope="module")
def inits(tmp_path_factory) -> Inits:
    return Inits(tmp_path_factory.mktemp("inits"))


def avcc_bytes(data: bytes) -> str:
    """profile, constraint flags, level: the three bytes after the avcC box's version byte."""
    at = data.find(b"avcC")
    assert at > 0
    return data[at + 5 : at + 8].hex()


# -- video ------------------------------------------------------------------------------------


def test_video_codec_is_avc1_plus_the_three_avcc_bytes(inits):
    track = read_track(inits.video, "video")
    assert track.kind == "video"
    assert track.codec == "avc1." + avcc_bytes(inits.video)
    assert track.codec.startswith("avc1.64")  # High profile (profile_idc 100)
    assert len(track.codec) == len("avc1.64001f")
    assert (track.width, track.height) == (320, 180)
    assert track.channels is None and track.sample_rate is None


def test_baseline_profile_codec(inits):
    track = read_track(inits.baseline, "video")
    assert track.codec == "avc1." + avcc_bytes(inits.baseline)
    # Constrained Baseline: profile_idc 66, constraint_set0 and constraint_set1 flags
    assert track.codec.startswith("avc1.42c0")
    assert (track.width, track.height) == (176, 144)


def test_video_only_init_has_exactly_one_track(inits):
    assert read_tracks(inits.video) == [read_track(inits.video, "video")]


def test_video_only_init_has_no_audio_track(inits):
    with pytest.raises(InitSegmentError, match="no audio track"):
        read_track(inits.video, "audio")


def test_muxed_init_lists_tracks_in_order(inits):
    video, audio = read_tracks(inits.muxed)
    assert (video.kind, audio.kind) == ("video", "audio")
    assert video.codec == "avc1." + avcc_bytes(inits.muxed)
    assert audio.codec == "mp4a.40.2"
    assert read_track(inits.muxed, "audio") == audio


# -- audio ------------------------------------------------------------------------------------


def test_aac_lc_stereo_48k(inits):
    track = read_track(inits.audio["stereo"], "audio")
    assert track == TrackInfo("audio", "mp4a.40.2", channels=2, sample_rate=48000)


def test_audio_only_init_has_no_video_track(inits):
    with pytest.raises(InitSegmentError, match="no video track"):
        read_track(inits.audio["stereo"], "video")


@pytest.mark.parametrize(("name", "channels"), [("mono", 1), ("stereo", 2), ("5.1", 6)])
def test_channel_count(inits, name, channels):
    """CHANNELS in the master comes from here: a mono dub must not be announced as stereo."""
    track = read_track(inits.audio[name], "audio")
    assert track.codec == "mp4a.40.2"
    assert track.channels == channels


@pytest.mark.parametrize(("name", "rate"), [("44100", 44100), ("stereo", 48000),
                                            ("96000", 96000)])
def test_sample_rate(inits, name, rate):
    assert read_track(inits.audio[name], "audio").sample_rate == rate


# -- not an init segment ----------------------------------------------------------------------


def test_synthetic_init_is_read():
    track = read_track(init_with(avc1(b"\x01\x4d\x40\x1f\xff")), "video")
    assert track == TrackInfo("video", "avc1.4d401f", width=64, height=48)


@pytest.mark.parametrize("data", [
    b"",
    b"\x00" * 7,
    b"this is not an mp4 file at all, just text",
    box(b"ftyp", b"isom"),                           # no moov
    struct.pack(">I4s", 4096, b"moov") + b"\x00" * 16,  # box larger than the data
    struct.pack(">I4s", 3, b"moov") + b"\x00" * 16,     # box smaller than its header
    struct.pack(">I4sQ", 1, b"moov", 8) + b"\x00" * 16,  # 64-bit size below the header
    struct.pack(">I4s", 1, b"moov") + b"\x00\x00",       # 64-bit size cut short
    box(b"moov", box(b"trak")),                      # no stsd
    init_with(b""),                                  # empty stsd
    init_with(box(b"hvc1", bytes(90))),              # unsupported sample entry
    init_with(box(b"avc1", bytes(90))),              # no avcC
    init_with(box(b"mp4a", bytes(28) + box(b"esds", bytes(4) + b"\x04\x00"))),  # no ES_Descr
], ids=["empty", "zeros", "text", "no-moov", "too-big", "too-small", "large-too-small",
        "large-cut", "no-stsd", "empty-stsd", "hvc1", "no-avcC", "bad-esds"])
def test_garbage_raises_init_segment_error(data):
    with pytest.raises(InitSegmentError):
        read_tracks(data)


@pytest.mark.parametrize("body", [b"", b"\x01", b"\x01\x64", b"\x01\x64\x00"],
                         ids=["0-bytes", "1-byte", "2-bytes", "3-bytes"])
def test_short_avcc_box_at_the_end_raises_init_segment_error(body):
    """An avcC box too short to hold profile/flags/level (the file ends there)."""
    with pytest.raises(InitSegmentError):
        read_tracks(init_with(avc1(body)))


def test_every_truncation_of_real_inits_raises_init_segment_error(inits):
    for data in (inits.video, inits.baseline, inits.audio["stereo"], inits.muxed):
        for end in range(len(data)):
            with pytest.raises(InitSegmentError):
                read_tracks(data[:end])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=256))
def test_random_bytes_never_raise_anything_but_init_segment_error(data):
    with contextlib.suppress(InitSegmentError):
        read_tracks(data)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.sampled_from(["video", "stereo", "muxed"]),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_real_inits_never_raise_anything_but_init_segment_error(inits, which, edits):
    original = inits.audio["stereo"] if which == "stereo" else getattr(inits, which)
    data = bytearray(original)
    for where, value in edits:
        data[where % len(data)] = value
    try:
        tracks = read_tracks(bytes(data))
    except InitSegmentError:
        return
    assert all(isinstance(t, TrackInfo) for t in tracks)


# -- movie fragments ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fragments(tmp_path_factory) -> tuple[bytes, list[bytes], list[float]]:
    """init, segments and EXTINFs of a B-frame video packaged the way the reconciler does."""
    root = tmp_path_factory.mktemp("fragments")
    source = samples.make_video(root / "b.mp4", seconds=3, size="160x90", fps=24,
                                gop_seconds=1, tone_hz=None)
    package_video(source, root / "v")
    listed = parse_media((root / "v" / "video.m3u8").read_text())
    return ((root / "v" / "init.mp4").read_bytes(),
            [(root / "v" / s.uri).read_bytes() for s in listed.segments],
            [s.duration for s in listed.segments])


def test_fragment_times_are_what_the_playlist_says_and_start_at_zero(fragments):
    """Signed composition offsets: the first picture is presented at decode time 0, B-frames
    reorder around it, and each segment lasts its EXTINF."""
    init, segments, extinfs = fragments
    ticks = timescale(init)
    timed = [read_samples(segment) for segment in segments]
    assert min(s.presentation for s in timed[0]) == timed[0][0].decode == 0
    assert any(s.presentation < s.decode for s in timed[0])  # negative offsets are read signed
    start = 0
    for samples_, extinf in zip(timed, extinfs, strict=True):
        assert samples_[0].decode == start
        length = sum(s.duration for s in samples_)
        assert length / ticks == pytest.approx(extinf, abs=1e-6)
        start += length


def test_split_header_parts_an_init_from_its_fragments(fragments):
    """Everything before the first moof (ftyp, moov; here also the segment's styp and sidx)."""
    init, segments, _ = fragments
    moof = segments[0].index(b"moof") - 4
    assert split_header(init + segments[0]) == (init + segments[0][:moof], segments[0][moof:])
    assert split_header(segments[0][moof:]) == (b"", segments[0][moof:])
    with pytest.raises(FragmentError):
        split_header(init)


def test_every_truncation_of_a_real_segment_raises_fragment_error_or_reads_its_moof(fragments):
    """Cut inside a box: FragmentError (never IndexError, struct.error); cut where the mdat
    begins, the complete moof still says what it holds."""
    _, segments, _ = fragments
    whole = read_samples(segments[0])
    for end in range(0, len(segments[0]), 7):
        with contextlib.suppress(FragmentError):
            assert read_samples(segments[0][:end]) == whole
    with pytest.raises(FragmentError):
        split_header(segments[0][:5])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_real_segments_never_raise_anything_but_fragment_error(fragments, edits):
    data = bytearray(fragments[1][0])
    for where, value in edits:
        data[where % len(data)] = value
    with contextlib.suppress(FragmentError):
        read_samples(bytes(data))
