"""Small sample media made with ffmpeg: the demo's inputs and the tests' fixtures."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .packager import MediaError
from .packager.ffmpeg import FFMPEG


def _ffmpeg(args: list[str], dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(dest)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise MediaError(f"could not make {dest.name}", proc.stderr[-2000:])
    return dest


def make_video(dest: Path, *, seconds: float = 10, size: str = "640x360", fps: int = 24,
               gop_seconds: float = 2, tone_hz: int | None = 440) -> Path:
    """An H.264 lecture stand-in (test pattern + optional sine 'speech'), keyframe every
    gop_seconds."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    if tone_hz:
        args += ["-f", "lavfi", "-i",
                 f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}"]
    args += ["-map", "0:v"] + (["-map", "1:a"] if tone_hz else [])
    gop = str(int(fps * gop_seconds))
    args += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt",
             "yuv420p", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-t", str(seconds)]
    if tone_hz:
        args += ["-c:a", "aac", "-b:a", "96k"]
    return _ffmpeg(args, dest)


def make_tone(dest: Path, *, hz: int, seconds: float, volume: float = 0.5) -> Path:
    """A sine tone standing in for a dub; the codec follows the file suffix (.mp3, .m4a, .wav)."""
    return _ffmpeg(
        ["-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000:duration={seconds}",
         "-af", f"volume={volume}", "-ac", "2"],
        dest,
    )
