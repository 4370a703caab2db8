"""The packager seam: what observe and apply ask of media files, and what a packaged rendition
is stamped with.

Pure (no subprocess): the plan reads the settings stamps here to tell a stale rendition, and
observe and apply drive a `Packager` they are handed. ffmpeg.py's `FfmpegPackager` is the one
production implementation (ffmpeg and ffprobe), which the engine wraps in remembered.py's
`RememberedPackager` (a file's probe and loudness are read once per process); a test may pass
a stand-in that writes canned files, so plan/apply tests that are not about ffmpeg run without
it (the split of store/__init__.py and store/s3.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ReconcilerError

HLS_TIME = 4
AUDIO_BITRATE = "128k"
AUDIO_RATE = 48000
AUDIO_CHANNELS = 2
AUDIO_LAYOUT = "stereo"  # what every input is mixed down (or up) to, before it is measured
# Loudness target for every audio rendition (EBU R128 style, streaming level): switching
# language never jumps in volume.
LOUDNESS_I = -16.0
LOUDNESS_TP = -1.0
# The limiter works on sample peaks at 48 kHz; this headroom below the true-peak ceiling covers
# inter-sample peaks and the AAC encoder's overshoot (the tests measure true peak on the output).
PEAK_HEADROOM_DB = 1.0
# Recorded on each rendition; bump when packaging changes so renditions are rebuilt.
VIDEO_SETTINGS = f"video:copy:hls{HLS_TIME}:v2"
AUDIO_SETTINGS = (
    f"audio:aac-lc:{AUDIO_BITRATE}:{AUDIO_RATE}:{AUDIO_CHANNELS}ch:hls{HLS_TIME}"
    f":gain{LOUDNESS_I:g}/{LOUDNESS_TP:g}:v4"
)
# A packaged rendition this many seconds shorter than its input is incomplete (a file cut short
# with its index intact makes ffmpeg package what is there and exit 0).
MAX_SHORTFALL = 1.0

OnSegment = Callable[[Path], None]
# Seconds of media written so far and the total: ffmpeg's own progress, never going back,
# ending at the total when ffmpeg says it is done.
OnProgress = Callable[[float, float], None]

class MediaError(ReconcilerError):
    """ffmpeg/ffprobe failed or the media is unusable; `detail` holds the tail of stderr."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


# An audio input whose length differs from the video's by at most this many seconds is padded
# or trimmed to it silently (encoder padding, a dub a breath longer). Beyond it the language
# fails unless its manifest entry opts in (`fit`), naming both durations: 27 s of silence or a
# cut-off ending is a wrong file more often than a wish.
ALIGN_TOLERANCE = 1.0
MAX_AUDIO_RATIO = 2.0  # audio longer than this many times the video is a mistake, not a dub


def check_fit(audio: float, video: float, *, may_pad: bool, may_trim: bool, label: str,
              language: str) -> str | None:
    """Whether audio of `audio` seconds may be fitted to a video of `video` seconds. MediaError
    when not (beyond ALIGN_TOLERANCE without the opt-in, or more than MAX_AUDIO_RATIO times
    the video even with it); otherwise a line to report when it is fitted beyond the tolerance,
    None within it. `label` names the input (no secrets), `language` the manifest entry."""
    if audio > MAX_AUDIO_RATIO * video + 1:
        raise MediaError(f"{label}: audio is {audio:.1f}s but the video is {video:.1f}s "
                         f"(more than {MAX_AUDIO_RATIO:g}x): wrong file?")
    gap = abs(audio - video)
    if gap <= ALIGN_TOLERANCE:
        return None
    short = audio < video
    fit, verb = ("pad", "padded with silence") if short else ("trim", "trimmed at its end")
    if not (may_pad if short else may_trim):
        raise MediaError(
            f"{label}: audio is {audio:.1f}s but the video is {video:.1f}s ({gap:.1f}s "
            f"{'shorter' if short else 'longer'}; the tolerance is {ALIGN_TOLERANCE:g}s): not "
            f"published. Supply audio as long as the video, or set `fit: {fit}` on language "
            f"{language} in the manifest to have it {verb}")
    return f"{language}: audio is {audio:.1f}s, video {video:.1f}s: {verb} (as its `fit` allows)"


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    video_codec: str | None
    width: int | None
    height: int | None
    frame_rate: float | None
    audio_streams: int
    # What decides whether every player can show the copied video as it was filmed: ffprobe's
    # profile name ("High", "High 10" ...) and pixel format, and the display matrix's rotation
    # (degrees counterclockwise, as ffprobe reports it) and mirroring.
    profile: str | None = None
    pixel_format: str | None = None
    rotation: int = 0
    mirrored: bool = False
    # How long the file's audio runs before its first picture (ffmpeg starts every stream's
    # timeline at the file's earliest stream, the packaged video at its own first picture).
    picture_lead: float = 0.0


@dataclass(frozen=True)
class Loudness:
    """What one measurement of the input found: integrated loudness and sample peak."""

    i: float  # LUFS, BS.1770 gated
    peak: float  # dBFS, highest sample

    @property
    def gain(self) -> float:
        """Linear gain (dB) that brings the input to the target loudness."""
        return LOUDNESS_I - self.i

    @property
    def needs_limiter(self) -> bool:
        """True when that gain would push peaks into the true-peak ceiling's headroom."""
        return self.peak + self.gain > LOUDNESS_TP - PEAK_HEADROOM_DB


@dataclass(frozen=True)
class Examined:
    """An audio input probed and measured: what the encode pass needs besides the timeline."""

    source: Path
    info: MediaInfo
    loudness: Loudness
    # Seconds of the input before the video's first picture (the video's own track may start
    # earlier): dropped, so the published audio and picture start together as they were.
    lead: float = 0.0


class Packager(Protocol):
    """Local media files in, fMP4 HLS renditions out (`init.mp4`, segments and the playlist
    named by layout.py, in a fresh `out_dir`), and what a media file holds. Raises MediaError
    when the media is unusable. `on_segment` receives each finished segment while packaging
    runs, so uploads overlap it; `on_progress` hears how far it is. `info`, where a method
    takes it, is what `probe` read of that very file when the caller has it already: the file
    is then not probed again (an apply probes its video once for all the steps that read it)."""

    def probe(self, source: Path, label: str | None = None) -> MediaInfo:
        """Duration and streams of a local media file; `label` names it in errors (never a
        presigned URL)."""

    def package_video(self, source: Path, out_dir: Path, on_segment: OnSegment | None = None,
                      on_progress: OnProgress | None = None, *,
                      info: MediaInfo | None = None) -> MediaInfo:
        """The video stream as a rendition (copied, never re-encoded)."""

    def examine_audio(self, source: Path, *, from_video: bool = False,
                      info: MediaInfo | None = None) -> Examined:
        """Probe and measure one language's input (runs while the video is packaged)."""

    def encode_audio(self, examined: Examined, out_dir: Path, *, segments: Sequence[float],
                     on_segment: OnSegment | None = None,
                     on_progress: OnProgress | None = None) -> MediaInfo:
        """One language's rendition at the target loudness on the video's timeline: its
        segments follow the video's (`segments`: their durations) and it ends with the video."""

    def extract_audio(self, source: Path, dest: Path, *,
                      info: MediaInfo | None = None) -> Path:
        """The video's audio track as a small file to send for dubbing."""
