"""The packager seam: ffprobe and ffmpeg, always as argument lists (never through a shell).

Packaging writes into a fresh directory per rendition with `-hls_segment_filename` carrying
that directory: ffmpeg writes init.mp4 beside the playlist but segments relative to the working
directory otherwise, which is how the hand-run commands scattered segments and caused the 403s.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .layout import (
    AUDIO_PLAYLIST,
    AUDIO_SEGMENT_TEMPLATE,
    INIT,
    VIDEO_PLAYLIST,
    VIDEO_SEGMENT_TEMPLATE,
)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
HLS_TIME = 4
AUDIO_BITRATE = "128k"
AUDIO_RATE = 48000
AUDIO_CHANNELS = 2
# Loudness target for every audio rendition (EBU R128 style, streaming level): switching
# language never jumps in volume.
LOUDNESS_I = -16.0
LOUDNESS_TP = -1.0
LOUDNESS_LRA = 11.0
# Recorded on each rendition; bump when packaging changes so renditions are rebuilt.
VIDEO_SETTINGS = f"video:copy:hls{HLS_TIME}:v1"
AUDIO_SETTINGS = (
    f"audio:aac-lc:{AUDIO_BITRATE}:{AUDIO_RATE}:{AUDIO_CHANNELS}ch:hls{HLS_TIME}"
    f":loudnorm{LOUDNESS_I:g}/{LOUDNESS_TP:g}:v2"
)
STDERR_TAIL = 12


class MediaError(Exception):
    """ffmpeg/ffprobe failed or the media is unusable; `detail` holds the tail of stderr."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    video_codec: str | None
    width: int | None
    height: int | None
    frame_rate: float | None
    audio_streams: int


def _tail(stderr: str) -> str:
    return "\n".join(stderr.strip().splitlines()[-STDERR_TAIL:])


def _run(args: list[str], what: str) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise MediaError(f"{what}: {args[0]} is not installed") from err
    if proc.returncode != 0:
        raise MediaError(f"{what}: {args[0]} exited with {proc.returncode}", _tail(proc.stderr))
    return proc.stdout


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return round(value, 3) if value > 0 else None


def probe(path: Path | str, label: str | None = None) -> MediaInfo:
    """Duration and streams of a media file or URL; MediaError when ffprobe cannot read it.
    `label` names it in errors (never put a presigned URL in a message)."""
    out = _run(
        [FFPROBE, "-v", "error", "-show_entries",
         "format=duration:stream=codec_type,codec_name,width,height,avg_frame_rate,duration",
         "-of", "json", str(path)],
        f"probe {label or Path(path).name}",
    )
    data = json.loads(out or "{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    try:
        duration = float(data.get("format", {}).get("duration") or 0)
    except ValueError:
        duration = 0.0
    if duration <= 0 and streams:
        duration = max(float(s.get("duration") or 0) for s in streams)
    return MediaInfo(
        duration=duration,
        video_codec=video.get("codec_name") if video else None,
        width=video.get("width") if video else None,
        height=video.get("height") if video else None,
        frame_rate=_rate(video.get("avg_frame_rate")) if video else None,
        audio_streams=len(audio),
    )


def _hls_args(out_dir: Path, playlist: str, segment_template: str) -> list[str]:
    return [
        "-f", "hls",
        "-hls_time", str(HLS_TIME),
        "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4",
        "-hls_fmp4_init_filename", INIT,
        "-hls_segment_filename", str(out_dir / segment_template),
        "-hls_flags", "independent_segments",
        str(out_dir / playlist),
    ]


def package_video(source: Path, out_dir: Path) -> MediaInfo:
    """Copy the first video stream (H.264, never re-encoded) into fMP4 HLS in out_dir."""
    info = probe(source)
    if info.video_codec is None:
        raise MediaError(f"{source.name} has no video stream")
    if info.video_codec != "h264":
        raise MediaError(
            f"{source.name}: video codec is {info.video_codec}; only H.264 is packaged "
            "(copied, never re-encoded)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
         "-map", "0:v:0", "-c:v", "copy", "-an", "-sn", "-dn",
         *_hls_args(out_dir, VIDEO_PLAYLIST, VIDEO_SEGMENT_TEMPLATE)],
        "package video",
    )
    return info


SILENCE_LUFS = -70.0  # quieter than this integrated loudness counts as silent (EBU gate)
MAX_AUDIO_RATIO = 2.0  # audio longer than this many times the video is a mistake, not a dub


@dataclass(frozen=True)
class Loudness:
    """ffmpeg loudnorm's first-pass measurement."""

    i: float
    tp: float
    lra: float
    thresh: float
    offset: float


def measure_loudness(source: Path) -> Loudness:
    """First loudnorm pass: what the audio measures, so the second pass can be linear."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-i", str(source), "-map", "0:a:0", "-vn",
         "-af", f"loudnorm=I={LOUDNESS_I}:TP={LOUDNESS_TP}:LRA={LOUDNESS_LRA}:print_format=json",
         "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )
    text = proc.stderr
    start, end = text.rfind("{"), text.rfind("}")
    if proc.returncode != 0 or start < 0 or end < start:
        raise MediaError(f"measure loudness of {source.name}: ffmpeg failed", _tail(text))
    data = json.loads(text[start : end + 1])
    return Loudness(*(float(data[k]) for k in (
        "input_i", "input_tp", "input_lra", "input_thresh", "target_offset")))


def package_audio(source: Path, out_dir: Path, *, duration: float,
                  from_video: bool = False) -> MediaInfo:
    """Encode one language: AAC-LC 128 kb/s, 48 kHz stereo, loudness-normalised (two-pass
    loudnorm, linear where possible), padded with silence or trimmed to exactly `duration` (the
    video's) so it spans the whole lecture. Silent, empty or far too long audio is refused."""
    info = probe(source)
    if info.audio_streams == 0:
        what = "the video has no audio track" if from_video else f"{source.name} has no audio"
        raise MediaError(what)
    if info.duration <= 0:
        raise MediaError(f"{source.name}: audio has no duration (empty or unreadable)")
    if info.duration > MAX_AUDIO_RATIO * duration + 1:
        raise MediaError(
            f"{source.name}: audio is {info.duration:.1f}s but the video is {duration:.1f}s "
            f"(more than {MAX_AUDIO_RATIO:g}x): wrong file?"
        )
    measured = measure_loudness(source)
    if measured.i < SILENCE_LUFS:
        raise MediaError(f"{source.name}: audio is silent (integrated loudness {measured.i} LUFS)")
    out_dir.mkdir(parents=True, exist_ok=True)
    loudnorm = (
        f"loudnorm=I={LOUDNESS_I}:TP={LOUDNESS_TP}:LRA={LOUDNESS_LRA}:measured_I={measured.i}"
        f":measured_TP={measured.tp}:measured_LRA={measured.lra}"
        f":measured_thresh={measured.thresh}:offset={measured.offset}:linear=true"
    )
    _run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
         "-map", "0:a:0", "-vn", "-sn", "-dn",
         "-af", f"{loudnorm},aresample={AUDIO_RATE},apad",
         "-t", f"{duration:.3f}",
         "-c:a", "aac", "-profile:a", "aac_low", "-b:a", AUDIO_BITRATE,
         "-ar", str(AUDIO_RATE), "-ac", str(AUDIO_CHANNELS),
         *_hls_args(out_dir, AUDIO_PLAYLIST, AUDIO_SEGMENT_TEMPLATE)],
        "package audio",
    )
    return info


def extract_audio(source: Path, dest: Path) -> Path:
    """The video's first audio track as a small file to send for dubbing (never the video)."""
    if probe(source).audio_streams == 0:
        raise MediaError("the video has no audio track to dub")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
         "-map", "0:a:0", "-vn", "-c:a", "libmp3lame", "-b:a", "128k", str(dest)],
        "extract audio",
    )
    return dest


def loudness(path: Path) -> float:
    """Integrated loudness (LUFS) of a file's first audio track, for checks and tests."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:a:0",
         "-af", "ebur128=framelog=verbose", "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )
    for line in reversed(proc.stderr.splitlines()):
        line = line.strip()
        if line.startswith("I:") and "LUFS" in line:
            return float(line.split()[1])
    raise MediaError(f"loudness of {path.name}: no measurement", _tail(proc.stderr))
