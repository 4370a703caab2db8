"""A corpus of the input shapes real lecture uploads have, generated with the system ffmpeg.

`Corpus(folder).path("rotated")` makes a clip the first time it is asked for and returns the
cached file afterwards (the session-scoped `corpus` fixture in conftest.py holds one per test
run, in a temporary folder), so a test pays only for the shapes it uses. Every clip is tiny
(160x90 to 320x180, 1-10 s) and the video is H.264 unless the shape is about the profile.

Shapes (name: what it stands for):
  lecture      LECTURE_SECONDS of H.264 High 8-bit 4:2:0 with a 440 Hz track: the plain case
  bframes      3 B-frames (so an edit list for the composition delay), a white frame and a
               click at FLASH_AT seconds (A/V offset measurements)
  upright      2 s of the plain case, 320x180
  rotated      a phone's portrait recording: `upright` with a display matrix rotating it 90
               degrees (shown 180x320)
  high10       High 10 (yuv420p10le, avc1.6e...)
  high422      High 4:2:2 (yuv422p, avc1.7a...)
  high444      High 4:4:4 Predictive (yuv444p, avc1.f4...)
  baseline     Constrained Baseline (no B-frames), as screen recorders and old phones make
  vfr          variable frame rate (frames dropped unevenly, timestamps kept)
  long_gop     one keyframe in LONG_GOP_SECONDS (segments longer than the 4 s target)
  surround     a 5.1 AAC track beside the video
  mono_8k.wav  mono, 8 kHz (a telephone-grade voice-over)
  dub_short    a dub 2 s long, for the LECTURE_SECONDS lecture
  dub_long     a dub 4 s longer than the lecture (less than twice it)
  dub_close    a dub 0.5 s longer than the lecture (within the alignment tolerance)
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

LECTURE_SECONDS = 6
FLASH_AT = 1.5
LONG_GOP_SECONDS = 10
_TONE = "sine=frequency=440:sample_rate=48000:duration={seconds}"
_PICTURE = "testsrc2=size={size}:rate=24:duration={seconds}"


def _video(seconds: float, *, size: str = "320x180", pix_fmt: str = "yuv420p",
           profile: list[str] | None = None, extra: list[str] | None = None,
           audio: str | None = _TONE) -> list[str]:
    """ffmpeg arguments for a test-pattern H.264 clip (and a tone track unless audio=None)."""
    args = ["-f", "lavfi", "-i", _PICTURE.format(size=size, seconds=seconds)]
    if audio:
        args += ["-f", "lavfi", "-i", audio.format(seconds=seconds), "-map", "0:v", "-map", "1:a",
                 "-c:a", "aac", "-b:a", "64k"]
    return [*args, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix_fmt,
            *(profile or []), *(extra or []), "-t", str(seconds)]


def _tone(seconds: float, *, channels: int = 2, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=660:sample_rate={rate}:duration={seconds}",
            "-af", "volume=0.5", "-ac", str(channels), "-ar", str(rate)]


def _flash_and_click(seconds: float) -> list[str]:
    """Black picture with one white frame, silence with one 10 ms click, both at FLASH_AT."""
    frame = 1 / 24
    return [
        "-f", "lavfi", "-i", f"color=black:size=320x180:rate=24:duration={seconds}",
        "-f", "lavfi", "-i",
        f"aevalsrc='if(between(t,{FLASH_AT},{FLASH_AT + 0.01}),0.8,0)':s=48000:d={seconds}",
        "-map", "0:v", "-map", "1:a",
        "-vf", f"drawbox=color=white:t=fill:enable='between(t,{FLASH_AT},{FLASH_AT + frame / 2})'",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "3",
        "-c:a", "aac", "-b:a", "64k", "-t", str(seconds),
    ]


# name -> (file name, the ffmpeg arguments before the output file)
RECIPES: dict[str, tuple[str, list[str]]] = {
    "lecture": ("lecture.mp4", _video(LECTURE_SECONDS)),
    "bframes": ("bframes.mp4", _flash_and_click(3)),
    "upright": ("upright.mp4", _video(2)),
    # ffmpeg 5.1 keeps a `rotate` tag only when copying (it writes the tkhd display matrix);
    # `-display_rotation` on the input is ffmpeg 6's
    "rotated": ("rotated.mp4", ["-i", "{upright}", "-map", "0", "-c", "copy",
                                "-metadata:s:v", "rotate=90"]),
    "high10": ("high10.mp4", _video(1, pix_fmt="yuv420p10le")),
    "high422": ("high422.mp4", _video(1, pix_fmt="yuv422p")),
    "high444": ("high444.mp4", _video(1, pix_fmt="yuv444p")),
    "baseline": ("baseline.mp4", _video(2, profile=["-profile:v", "baseline"])),
    "vfr": ("vfr.mp4", _video(3, extra=["-vf", "select='not(mod(n\\,3))+lt(t\\,1)'",
                                         "-fps_mode", "vfr"])),
    "long_gop": ("long_gop.mp4", _video(LONG_GOP_SECONDS, size="160x90", extra=[
        "-g", str(24 * LONG_GOP_SECONDS), "-keyint_min", str(24 * LONG_GOP_SECONDS),
        "-sc_threshold", "0"])),
    "surround": ("surround.mp4", _video(2, audio=_TONE + ",aformat=channel_layouts=5.1")),
    "mono_8k": ("mono_8k.wav", _tone(2, channels=1, rate=8000)),
    "dub_short": ("dub_short.mp3", _tone(2)),
    "dub_long": ("dub_long.mp3", _tone(LECTURE_SECONDS + 4)),
    "dub_close": ("dub_close.mp3", _tone(LECTURE_SECONDS + 0.5)),
}


class Corpus:
    """The shapes above, each generated once into `folder` on first use (thread-safe)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.RLock()  # a shape made from another ("{upright}") nests

    def path(self, name: str) -> Path:
        """The clip for a shape name of RECIPES, made now if it is not there yet."""
        file_name, template = RECIPES[name]
        dest = self.folder / file_name
        with self._lock:
            if not dest.exists():
                args = [str(self.path(part[1:-1])) if part.startswith("{") else part
                        for part in template]
                self.folder.mkdir(parents=True, exist_ok=True)
                partial = dest.with_name(f"partial-{file_name}")
                subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                                "-y", *args, str(partial)], check=True)
                partial.rename(dest)
        return dest

    def copy_to(self, name: str, folder: Path, as_name: str | None = None) -> Path:
        """The clip copied into `folder` (a test repository's media), under `as_name`."""
        dest = folder / (as_name or self.path(name).name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.path(name).read_bytes())
        return dest
