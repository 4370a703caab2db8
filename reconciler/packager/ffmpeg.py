"""The packager seam's implementation: ffprobe and ffmpeg, always as argument lists (never
through a shell). `FfmpegPackager` is what observe and apply are handed (the package's
__init__.py holds the interface and the settings a rendition is stamped with).

Packaging writes into a fresh directory per rendition with `-hls_segment_filename` carrying
that directory: ffmpeg writes init.mp4 beside the playlist but segments relative to the working
directory otherwise, which is how the hand-run commands scattered segments and caused the 403s.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from itertools import accumulate
from pathlib import Path
from typing import IO

from .. import logs
from ..hls import MediaPlaylist, Segment, render_media, target_duration
from ..layout import (
    AUDIO_PLAYLIST,
    AUDIO_SEGMENT_TEMPLATE,
    INIT,
    VIDEO_PLAYLIST,
    VIDEO_SEGMENT_TEMPLATE,
)
from ..mp4 import FragmentError, read_samples, split_header, timescale
from . import (
    AUDIO_BITRATE,
    AUDIO_CHANNELS,
    AUDIO_LAYOUT,
    AUDIO_RATE,
    HLS_TIME,
    LOUDNESS_I,
    LOUDNESS_TP,
    PEAK_HEADROOM_DB,
    Examined,
    Loudness,
    MediaError,
    MediaInfo,
    OnProgress,
    OnSegment,
)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
STDERR_TAIL = 12
# The only demuxers an input is opened with, and the only protocol: a "video" that is really an
# HLS playlist, an ffconcat list or an image pattern would make ffmpeg read other files
# (outside the repository, or over the network). Names as ffmpeg's -format_whitelist matches
# them: mov covers mp4/m4a, matroska covers webm.
INPUT_FORMATS = ("mov", "matroska", "mp3", "wav", "aac", "flac", "ogg")
_NOT_ALLOWED = re.compile(r"\[(\w+) @ [^\]]*\] Format not on whitelist")


def _tail(stderr: str) -> str:
    return "\n".join(stderr.strip().splitlines()[-STDERR_TAIL:])


def input_args(path: Path) -> list[str]:
    """`-i` for a local media file, opened only with the allowed demuxers and the file
    protocol (`file:` also keeps a name like `x:y.mp4` from reading as a protocol)."""
    return ["-protocol_whitelist", "file", "-format_whitelist", ",".join(INPUT_FORMATS),
            "-i", f"file:{Path(path).resolve()}"]


def _refused_format(stderr: str) -> str | None:
    found = _NOT_ALLOWED.search(stderr)
    if found is None:
        return None
    return (f"is {found[1]!r} data, not a media file (read only as "
            f"{', '.join(INPUT_FORMATS)}: playlists, concat lists and image sequences are refused)")


def _run(args: list[str], what: str, *, log: bool = False) -> str:
    """Run ffmpeg/ffprobe; stdout, or with `log` stderr (where ffmpeg's filters report)."""
    logs.command(args)
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise MediaError(f"{what}: {args[0]} is not installed") from err
    if proc.returncode != 0:
        refused = _refused_format(proc.stderr)
        if refused:
            raise MediaError(f"{what}: {refused}")
        raise MediaError(f"{what}: {args[0]} exited with {proc.returncode}", _tail(proc.stderr))
    return proc.stderr if log else proc.stdout


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return round(value, 3) if value > 0 else None


def _orientation(video: dict) -> tuple[int, bool]:
    """Rotation (degrees counterclockwise, 0-359) and mirroring from a video stream's display
    matrix side data (row-major a b u / c d v / x y w in ffprobe's dump); (0, False) without."""
    for side in video.get("side_data_list") or []:
        if "displaymatrix" not in side:
            continue
        cells = [int(value) for line in side["displaymatrix"].splitlines() if ":" in line
                 for value in line.split(":", 1)[1].split()]
        if len(cells) != 9:
            continue
        a, b, _u, c, d = cells[:5]
        return round(float(side.get("rotation") or 0)) % 360, a * d - b * c < 0
    return 0, False


def probe(path: Path, label: str | None = None) -> MediaInfo:
    """Duration and streams of a local media file; MediaError when ffprobe cannot read it.
    `label` names it in errors (never put a presigned URL in a message)."""
    out = _run(
        [FFPROBE, "-v", "error", "-show_entries",
         "format=duration,start_time:stream=codec_type,codec_name,width,height,avg_frame_rate,"
         "duration,start_time,profile,pix_fmt:stream_side_data=rotation,displaymatrix",
         "-of", "json", *input_args(path)],
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
    rotation, mirrored = _orientation(video) if video else (0, False)
    return MediaInfo(
        duration=duration,
        video_codec=video.get("codec_name") if video else None,
        width=video.get("width") if video else None,
        height=video.get("height") if video else None,
        frame_rate=_rate(video.get("avg_frame_rate")) if video else None,
        audio_streams=len(audio),
        profile=video.get("profile") if video else None,
        pixel_format=video.get("pix_fmt") if video else None,
        rotation=rotation,
        mirrored=mirrored,
        picture_lead=_picture_lead(data, video),
    )


def _picture_lead(data: dict, video: dict | None) -> float:
    """Seconds from the file's start (its earliest stream) to its first picture; 0 when either
    start time is unknown (the streams start together)."""
    try:
        return max(0.0, float(video["start_time"]) - float(data["format"]["start_time"]))
    except (TypeError, KeyError, ValueError):
        return 0.0


# What every target player decodes (iOS/Safari and Firefox lack High 10, 4:2:2 and 4:4:4, though
# Chromium's isTypeSupported says yes): ffprobe's names of the 8-bit 4:2:0 H.264 profiles.
PLAYABLE_PROFILES = ("Constrained Baseline", "Baseline", "Main", "High")
PLAYABLE_PIXEL_FORMATS = ("yuv420p", "yuvj420p")
# The one-line fix offered for a video that is refused: re-encoded to 8-bit 4:2:0 High, and
# upright (ffmpeg applies a display matrix when it re-encodes, and writes none).
FIX_COMMAND = ("ffmpeg", "-i", "{source}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-profile:v", "high", "-c:a", "copy", "{fixed}")


def fix_command(name: str) -> list[str]:
    """FIX_COMMAND for a file name (the output beside it, `-h264` before its suffix)."""
    fixed = f"{Path(name).stem}-h264.mp4"
    return [part.format(source=name, fixed=fixed) for part in FIX_COMMAND]


def refuse_unplayable(info: MediaInfo, name: str) -> None:
    """Refuse a video the copy would publish wrong: stored rotated or mirrored (WebKit's HLS
    player ignores the tkhd display matrix of fMP4 HLS, so it would play sideways), or an
    H.264 profile/pixel format that iOS/Safari or Firefox cannot decode. The message names the
    file, what is wrong and the ffmpeg command that fixes it."""
    fix = shlex.join(fix_command(name))
    if info.rotation or info.mirrored:
        how = " and ".join([f"rotated {info.rotation} degrees"] * bool(info.rotation)
                           + ["mirrored"] * info.mirrored)
        raise MediaError(
            f"{name}: the video is {how} by its display matrix (as phones record portrait "
            f"video); HLS players such as iOS Safari's ignore it, so the copied stream would "
            f"be shown sideways: not published. Re-encode it upright: {fix}")
    if info.profile not in PLAYABLE_PROFILES or info.pixel_format not in PLAYABLE_PIXEL_FORMATS:
        raise MediaError(
            f"{name}: H.264 profile {info.profile or 'unknown'} with pixel format "
            f"{info.pixel_format or 'unknown'} cannot be decoded by iOS/Safari or Firefox "
            f"(only 8-bit 4:2:0 {', '.join(PLAYABLE_PROFILES[:-1])} or "
            f"{PLAYABLE_PROFILES[-1]} is published). Re-encode it: "
            f"{fix}")


WATCH_INTERVAL = 0.1  # seconds between looks at ffmpeg's output folder
# ffmpeg's -progress: key=value lines on stdout, a block every PROGRESS_PERIOD seconds, each
# ending `progress=continue` (`progress=end` for the last one).
PROGRESS_PERIOD = 0.25
PROGRESS_ARGS = ["-progress", "pipe:1", "-stats_period", str(PROGRESS_PERIOD)]


def follow_progress(lines: Iterable[str], total: float, on_progress: OnProgress) -> None:
    """Hand on ffmpeg's -progress blocks as (seconds written, `total`), starting at 0 as ffmpeg
    starts (the pace is measured from there): clamped to the total, never backwards (an audio
    encode's priming starts below zero), and the total itself when ffmpeg says it is done."""
    done = 0.0
    on_progress(done, total)
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit():
            done = max(done, min(total, int(value) / 1e6))
        elif key == "progress":
            on_progress(total if value == "end" else done, total)


def _run_streaming(args: list[str], what: str, out_dir: Path, prefix: str,
                   on_segment: OnSegment | None, progress: tuple[float, OnProgress] | None
                   ) -> str:
    """Run ffmpeg writing HLS into out_dir; while it runs, hand each finished segment to
    `on_segment` (segment N is finished once N+1 exists: ffmpeg writes them in order), so
    uploading overlaps encoding, and ffmpeg's progress against `progress`'s total seconds to its
    callback. The last segment is left for the caller. Returns stderr."""
    if on_segment is None and progress is None:
        return _run(args, what, log=True)
    if progress is not None:
        args = [args[0], *PROGRESS_ARGS, *args[1:]]
    logs.command(args)
    with tempfile.TemporaryFile("w+") as err:
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE if progress else
                                    subprocess.DEVNULL, stderr=err, text=True)
        except FileNotFoundError as exc:
            raise MediaError(f"{what}: {args[0]} is not installed") from exc
        reader = None
        if progress is not None:
            reader = threading.Thread(target=follow_progress, name="ffmpeg-progress",
                                      args=(proc.stdout, *progress), daemon=True)
            reader.start()
        if on_segment is not None:
            _hand_over_segments(proc, out_dir, prefix, on_segment)
        proc.wait()
        if reader is not None:
            reader.join()
            proc.stdout.close()
        err.seek(0)
        text = err.read()
    if proc.returncode != 0:
        raise MediaError(f"{what}: {args[0]} exited with {proc.returncode}", _tail(text))
    return text


def _hand_over_segments(proc: subprocess.Popen, out_dir: Path, prefix: str,
                        on_segment: OnSegment) -> None:
    """Until ffmpeg exits, hand each finished segment to `on_segment` (all but the last)."""
    handed = 0
    while True:
        done = proc.poll() is not None
        names = sorted(p.name for p in out_dir.glob(f"{prefix}*.m4s"))
        while handed < len(names) - 1 and proc.returncode in (None, 0):
            on_segment(out_dir / names[handed])
            handed += 1
        if done:
            return
        time.sleep(WATCH_INTERVAL)


def _hls_args(out_dir: Path, playlist: str, segment_template: str) -> list[str]:
    return [
        "-f", "hls",
        # Signed composition offsets (trun version 1, as CMAF has them) put a B-frame video's
        # first picture at decode time 0, where an MSE player shows it: with unsigned offsets
        # it sits one B-frame delay late and only the init's edit list (which MSE ignores)
        # moved it back. No edit list at all, so every player times the fragments alike.
        "-hls_segment_options", "movflags=+negative_cts_offsets:use_editlist=0",
        "-hls_time", str(HLS_TIME),
        "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4",
        "-hls_fmp4_init_filename", INIT,
        "-hls_segment_filename", str(out_dir / segment_template),
        "-hls_flags", "independent_segments",
        str(out_dir / playlist),
    ]


def package_video(source: Path, out_dir: Path, on_segment: OnSegment | None = None,
                  on_progress: OnProgress | None = None, *,
                  info: MediaInfo | None = None) -> MediaInfo:
    """Copy the first video stream (H.264, never re-encoded) into fMP4 HLS in out_dir;
    `on_segment` receives finished segments while ffmpeg runs, `on_progress` how far the copy
    is against the input's duration; `info` is the source's probe when the caller has it."""
    info = info or probe(source)
    if info.video_codec is None:
        raise MediaError(f"{source.name} has no video stream")
    if info.video_codec != "h264":
        raise MediaError(
            f"{source.name}: video codec is {info.video_codec}; only H.264 is packaged "
            "(copied, never re-encoded)"
        )
    refuse_unplayable(info, source.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    _run_streaming(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *input_args(source),
         "-map", "0:v:0", "-c:v", "copy", "-an", "-sn", "-dn",
         *_hls_args(out_dir, VIDEO_PLAYLIST, VIDEO_SEGMENT_TEMPLATE)],
        "package video", out_dir, VIDEO_SEGMENT_TEMPLATE.split("%")[0], on_segment,
        (info.duration, on_progress) if on_progress else None,
    )
    return info


SILENCE_LUFS = -70.0  # quieter than this integrated loudness counts as silent (EBU gate)


BLOCK_GATE_LUFS = -70.0  # BS.1770 absolute gate for 400 ms blocks
RELATIVE_GATE_LU = 10.0  # BS.1770 relative gate below the absolutely gated loudness
SPLIT_MIN_SECONDS = 60.0  # shorter inputs are measured by one process
_BLOCK = re.compile(r"\bt:\s*([0-9.]+)\s.*?\bM:\s*(-?[0-9.]+)")
_PEAK = re.compile(r"Peak:\s*(-?[0-9.]+|-inf)\s*dBFS")


def integrated(blocks: list[float]) -> float:
    """BS.1770 integrated loudness from the momentary loudness of every 400 ms block (75 %
    overlap): absolute gate, then the relative gate 10 LU below."""
    def mean(values: list[float]) -> float:
        return -0.691 + 10 * math.log10(sum(10 ** ((m + 0.691) / 10) for m in values)
                                        / len(values))

    gated = [m for m in blocks if m > BLOCK_GATE_LUFS]
    if not gated:
        return -math.inf
    floor = mean(gated) - RELATIVE_GATE_LU
    return mean([m for m in gated if m > floor])


def _measure_span(source: Path, start: float, length: float | None, log: IO[bytes]
                  ) -> subprocess.Popen:
    """One span's ebur128 pass. Its log (a line per 100 ms block, ~0.5 MB an hour) goes to a
    file, not a pipe: spans are waited for one after another, and a full pipe would stall every
    span but the first until its turn."""
    span = ["-ss", f"{start:.3f}"] if start else []
    span += ["-t", f"{length:.3f}"] if length is not None else []
    args = [FFMPEG, "-nostdin", "-hide_banner", "-nostats", *span, *input_args(source),
            "-map", "0:a:0", "-vn", "-sn", "-dn",
            "-af", f"{DOWNMIX},ebur128=peak=sample:framelog=info", "-f", "null", "-"]
    logs.command(args)
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)


def measure_loudness(source: Path, duration: float, parts: int | None = None) -> Loudness:
    """Integrated loudness and sample peak of what is encoded - the input mixed to the
    published channel layout (5.1 measured as itself would miss the target once downmixed) -
    in one decode at the input's own rate (ffmpeg ebur128, not loudnorm's 192 kHz path). Long
    inputs are measured in `parts` spans at once (one per core): every 400 ms block lies
    wholly inside one span, so the gated result is that of one pass over the whole file (up to
    where each span's 100 ms block grid starts)."""
    parts = parts or (min(os.cpu_count() or 1, 4) if duration >= SPLIT_MIN_SECONDS else 1)
    step = round(duration / parts, 1)
    starts = [round(k * step, 1) for k in range(parts)]
    # Span k covers [start_k, start_k+1 + 0.3]: its blocks end from start_k + 0.4 on, so the
    # spans' complete blocks tile the file without gap or overlap.
    with ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in starts]
        procs = [_measure_span(source, start, None if k == parts - 1 else step + 0.3, log)
                 for k, (start, log) in enumerate(zip(starts, logs, strict=True))]
        texts = []
        for proc, log in zip(procs, logs, strict=True):
            proc.wait()
            log.seek(0)
            texts.append(log.read().decode("utf-8", "replace"))
    blocks: list[float] = []
    peak = -math.inf
    for proc, text in zip(procs, texts, strict=True):
        if proc.returncode != 0:
            raise MediaError(f"measure loudness of {source.name}: ffmpeg failed", _tail(text))
        blocks += [float(m) for t, m in _BLOCK.findall(text) if float(t) > 0.35]
        peaks = _PEAK.findall(text)
        if peaks:
            peak = max(peak, float(peaks[-1]))
    return Loudness(integrated(blocks), peak)


# The one mix to the published layout, used by the measurement and the encode alike (ffmpeg's
# default matrix: centre and surrounds at -3 dB, LFE dropped; mono to both sides at -3 dB).
DOWNMIX = f"aformat=channel_layouts={AUDIO_LAYOUT}"
LIMITED_TOLERANCE_LU = 0.3  # a limited encode further than this from the target is redone


def loudness_filter(measured: Loudness, correction: float = 0.0) -> str:
    """The encode pass's filters: a linear gain to the target and, only when the gain would
    push peaks over the ceiling, a look-ahead limiter (delay compensated, no make-up gain)
    followed by a measurement of what the limiter left."""
    chain = [f"volume={measured.gain + correction:.2f}dB"]
    if measured.needs_limiter:
        limit = 10 ** ((LOUDNESS_TP - PEAK_HEADROOM_DB) / 20)
        chain += [f"alimiter=limit={limit:.4f}:attack=5:release=50:level=0:latency=1",
                  "ebur128"]
    return ",".join(chain)


# The AAC encoder's start-up delay: its first frame decodes to this many samples before the
# input's first one. MSE players play them (they ignore the edit list that would hide them).
PRIMING_SAMPLES = 1024


def timeline_filter(seconds: float, gain: str, lead: float = 0.0) -> str:
    """Put the input on the published timeline: resampled (silence filling a late start) and
    mixed down, its `lead` seconds before the picture and then PRIMING_SAMPLES more dropped
    (the priming takes their place, so the input's sample at t plays at t), then padded or cut
    to end where `seconds` does (the encoder's last frame ends within one frame after). `gain`
    is the loudness_filter chain, applied in between."""
    keep = round(seconds * AUDIO_RATE) - PRIMING_SAMPLES
    drop = round(lead * AUDIO_RATE) + PRIMING_SAMPLES
    return (f"aresample={AUDIO_RATE}:first_pts=0,{DOWNMIX},"
            f"atrim=start_sample={drop},asetpts=PTS-STARTPTS,{gain},"
            f"apad,atrim=end_sample={keep}")


AUDIO_PREFIX = AUDIO_SEGMENT_TEMPLATE.split("%")[0]


def _split_init(first: Path) -> None:
    """Move the init (ftyp, moov) that the segment muxer writes at the head of the first
    segment into init.mp4; a segment already split is left alone."""
    data = first.read_bytes()
    try:
        header, fragments = split_header(data)
    except FragmentError as err:
        raise MediaError(f"package audio: {first.name} holds no movie fragment") from err
    if header:
        (first.parent / INIT).write_bytes(header)
        first.write_bytes(fragments)


def _write_audio_playlist(out_dir: Path) -> None:
    """audio.m3u8 with each segment's duration read from its own fragments (what players
    time it by), not from the muxer's estimate."""
    ticks = timescale((out_dir / INIT).read_bytes())
    segments = []
    for path in sorted(out_dir.glob(f"{AUDIO_PREFIX}*.m4s")):
        try:
            samples = read_samples(path.read_bytes())
        except FragmentError as err:
            raise MediaError(f"package audio: {path.name}: {err}") from err
        segments.append(Segment(path.name, sum(s.duration for s in samples) / ticks))
    playlist = MediaPlaylist(target_duration(s.duration for s in segments), tuple(segments))
    (out_dir / AUDIO_PLAYLIST).write_text(render_media(playlist))



def _summary_i(text: str) -> float | None:
    found = re.search(r"I:\s*(-?[0-9.]+) LUFS", text[text.rfind("Summary:"):])
    return float(found.group(1)) if "Summary:" in text and found else None


def examine_audio(source: Path, *, from_video: bool = False,
                  info: MediaInfo | None = None) -> Examined:
    """Probe (unless `info` is the source's probe) and measure one language's input (needs
    nothing from the video, so it can run while the video is packaged). Inputs without audio,
    empty or silent are refused."""
    info = info or probe(source)
    if info.audio_streams == 0:
        what = "the video has no audio track" if from_video else f"{source.name} has no audio"
        raise MediaError(what)
    if info.duration <= 0:
        raise MediaError(f"{source.name}: audio has no duration (empty or unreadable)")
    measured = measure_loudness(source, info.duration)
    if measured.i < SILENCE_LUFS:
        raise MediaError(f"{source.name}: audio is silent (integrated loudness "
                         f"{measured.i:.1f} LUFS)")
    return Examined(source, info, measured, info.picture_lead if from_video else 0.0)


def encode_audio(examined: Examined, out_dir: Path, *, segments: Sequence[float],
                 on_segment: OnSegment | None = None,
                 on_progress: OnProgress | None = None) -> MediaInfo:
    """Encode one language: AAC-LC 128 kb/s, 48 kHz stereo, at the target loudness (the
    measured linear gain; limited only when peaks need it, and re-encoded once with a corrected
    gain if the limiter took the loudness off target), on the video's timeline: `segments` are
    the video's segment durations; the audio's segments start with them (at the first AAC frame
    from each video boundary) and it ends with the video (padded with silence or trimmed), so
    it spans the whole lecture (whether it may be padded or trimmed is the caller's decision:
    packaging.check_fit). `on_segment` receives finished segments while ffmpeg runs (not on the
    limited path, whose segments a correction may rewrite); `on_progress` how far the encode is
    against the video's duration (a corrected encode starts it again)."""
    source, info, measured = examined.source, examined.info, examined.loudness
    duration = sum(segments)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = out_dir / (AUDIO_SEGMENT_TEMPLATE % 0)

    def hand_over(path: Path) -> None:
        if path == first:
            _split_init(path)
        on_segment(path)

    # Cut at every video boundary; the last one, the video's end, is never reached (the audio's
    # last frame starts before it) and only keeps the muxer from cutting at its default 2 s.
    boundaries = ",".join(f"{t:.6f}" for t in accumulate(segments))
    correction = 0.0
    for _attempt in range(2):
        log = _run_streaming(
            [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-y", *input_args(source),
             "-map", "0:a:0", "-vn", "-sn", "-dn",
             "-af", timeline_filter(duration, loudness_filter(measured, correction),
                                   examined.lead),
             "-c:a", "aac", "-profile:a", "aac_low", "-b:a", AUDIO_BITRATE,
             "-ar", str(AUDIO_RATE), "-ac", str(AUDIO_CHANNELS),
             # The segment muxer, not hls: it cuts where it is told (hls only every -hls_time
             # seconds, which left a one-frame segment at the end and ignored long GOPs).
             "-f", "segment", "-segment_times", boundaries, "-segment_format", "mp4",
             "-segment_format_options",
             "movflags=+frag_custom+empty_moov+default_base_moof+skip_trailer:use_editlist=0",
             "-individual_header_trailer", "0", str(out_dir / AUDIO_SEGMENT_TEMPLATE)],
            "package audio", out_dir, AUDIO_PREFIX,
            None if measured.needs_limiter or on_segment is None else hand_over,
            (duration, on_progress) if on_progress else None,
        )
        achieved = _summary_i(log) if measured.needs_limiter else None
        if achieved is None or abs(achieved - LOUDNESS_I) <= LIMITED_TOLERANCE_LU:
            break
        correction += LOUDNESS_I - achieved
    _split_init(first)
    _write_audio_playlist(out_dir)
    return info


def _even_segments(duration: float) -> list[float]:
    """HLS_TIME-second segments spanning `duration`: a video timeline for audio alone."""
    whole = math.ceil(duration / HLS_TIME - 1e-9)
    return [min(HLS_TIME, duration - k * HLS_TIME) for k in range(whole)]


def package_audio(source: Path, out_dir: Path, *, duration: float,
                  from_video: bool = False) -> MediaInfo:
    """Examine, then encode, one language's audio (see the two steps) on a timeline of
    `duration` seconds cut every HLS_TIME seconds."""
    return encode_audio(examine_audio(source, from_video=from_video), out_dir,
                        segments=_even_segments(duration))


def extract_audio(source: Path, dest: Path, *, info: MediaInfo | None = None) -> Path:
    """The video's first audio track as a small file to send for dubbing (never the video);
    `info` is the source's probe when the caller has it."""
    if (info or probe(source)).audio_streams == 0:
        raise MediaError("the video has no audio track to dub")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *input_args(source),
         "-map", "0:a:0", "-vn", "-c:a", "libmp3lame", "-b:a", "128k", str(dest)],
        "extract audio",
    )
    return dest


def loudness(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) of a file's first audio track, as
    ffmpeg's ebur128 reports them in one pass: for checks and tests of the packaged output."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-nostats", *input_args(path), "-map", "0:a:0",
         "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )
    text = proc.stderr
    lufs = _summary_i(text)
    peak = re.search(r"Peak:\s*(-?[0-9.]+|-inf) dBFS", text[text.rfind("True peak:"):])
    if proc.returncode != 0 or lufs is None or not peak:
        raise MediaError(f"loudness of {path.name}: no measurement", _tail(text))
    return lufs, float(peak.group(1))


class FfmpegPackager:
    """The production Packager (the package's interface): this module's ffmpeg functions."""

    probe = staticmethod(probe)
    package_video = staticmethod(package_video)
    examine_audio = staticmethod(examine_audio)
    encode_audio = staticmethod(encode_audio)
    extract_audio = staticmethod(extract_audio)
