"""Subtitles: WebVTT or SRT text -> checked cues -> WebVTT segments on the video's boundaries.

Pure (no I/O). A subtitle rendition is cut on the video rendition's segment boundaries, so its
playlist has the same EXTINFs as the video and the section keeps one EXT-X-TARGETDURATION.
Every segment carries `X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000`: cue times are seconds of
the CMAF timeline, whose first fragment ffmpeg writes at decode time 0, which is how hls.js
(webvtt-parser: offset = (MPEGTS - initPTS) / 90 kHz, the same offset it gives the media) and
Safari place them. A cue that spans a boundary is repeated in both segments; hls.js drops the
duplicate (same start, end and text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SEGMENT_TEMPLATE = "s_%03d.vtt"
MPEGTS = 0
# A cue may end this much after the video's last frame (transcripts round up); later is a
# mistake (the wrong file, or a file for a longer cut of the lecture).
END_TOLERANCE = 1.0
SETTINGS = f"subtitles:webvtt:mpegts{MPEGTS}:v1"

_TIME = re.compile(r"^(?:(\d+):)?([0-5]\d):([0-5]\d)[.,](\d{3})$")
_TIMING = re.compile(r"^(\S+)[ \t]+-->[ \t]+(\S+)(?:[ \t]+.*)?$")


class SubtitleError(ValueError):
    """A subtitle file that cannot be published; the message names the file and line."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    line: int  # of its timing line in the input, for messages


def _seconds(stamp: str) -> float | None:
    found = _TIME.match(stamp)
    if found is None:
        return None
    hours, minutes, seconds, millis = found.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _decode(data: bytes, label: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SubtitleError(f"{label}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                            "save the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SubtitleError(f"{label}:{line}: NUL byte: not a text file (UTF-16?); save it as "
                            "UTF-8")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _blocks(lines: list[str], start: int) -> list[tuple[int, list[str]]]:
    """(1-based line number of its first line, lines) of each blank-line separated block."""
    out: list[tuple[int, list[str]]] = []
    current: list[str] = []
    first = 0
    for number, line in enumerate(lines[start:], start + 1):
        if line.strip():
            if not current:
                first = number
            current.append(line)
        elif current:
            out.append((first, current))
            current = []
    if current:
        out.append((first, current))
    return out


def _cue(label: str, number: int, timing: str, text: list[str]) -> Cue:
    found = _TIMING.match(timing.strip())
    start = _seconds(found[1]) if found else None
    end = _seconds(found[2]) if found else None
    if start is None or end is None:
        raise SubtitleError(f"{label}:{number}: bad cue timing {timing.strip()[:60]!r} "
                            "(expected HH:MM:SS.mmm --> HH:MM:SS.mmm)")
    body = "\n".join(line.rstrip() for line in text).strip()
    if not body:
        raise SubtitleError(f"{label}:{number}: cue has no text")
    if "-->" in body:
        raise SubtitleError(f"{label}:{number}: cue text contains '-->' (a missing blank line?)")
    return Cue(start, end, body, number)


def parse(data: bytes, label: str) -> list[Cue]:
    """Cues of a WebVTT or SRT file (told apart by content); SubtitleError otherwise."""
    lines = _decode(data, label).split("\n")
    if lines[0].startswith("WEBVTT") and lines[0][6:7] in ("", " ", "\t"):
        cues = []
        for number, block in _blocks(lines, 1):
            if block[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in block[0]:
                if cues and block[0].startswith(("STYLE", "REGION")):
                    raise SubtitleError(f"{label}:{number}: {block[0].split()[0]} after a cue")
                continue
            if number == 2 and "-->" not in block[0]:
                continue  # header lines right after WEBVTT (e.g. Kind:, Language:)
            timing_at = 0 if "-->" in block[0] else 1
            if timing_at >= len(block) or "-->" not in block[timing_at]:
                raise SubtitleError(f"{label}:{number}: expected a cue timing line "
                                    f"(got {block[0][:60]!r})")
            cues.append(_cue(label, number + timing_at, block[timing_at],
                             block[timing_at + 1:]))
        return cues
    blocks = _blocks(lines, 0)
    if not blocks or not blocks[0][1][0].strip().isdigit() or len(blocks[0][1]) < 2 \
            or "-->" not in blocks[0][1][1]:
        first = blocks[0][0] if blocks else 1
        raise SubtitleError(f"{label}:{first}: neither WebVTT (no 'WEBVTT' header) nor SRT "
                            "(no numbered cue)")
    cues = []
    for number, block in blocks:
        if not block[0].strip().isdigit() or len(block) < 2:
            raise SubtitleError(f"{label}:{number}: expected an SRT cue number and timing "
                                f"(got {block[0][:60]!r})")
        cues.append(_cue(label, number + 1, block[1], block[2:]))
    return cues


def check(cues: Sequence[Cue], label: str, duration: float) -> list[Cue]:
    """Cues fit to publish for a video of `duration` seconds: none empty, in order, not
    overlapping, none past the video's end (ends within END_TOLERANCE are clamped)."""
    if not cues:
        raise SubtitleError(f"{label}: no cues")
    out: list[Cue] = []
    for cue in cues:
        where = f"{label}:{cue.line}"
        if cue.end <= cue.start:
            raise SubtitleError(f"{where}: cue ends ({cue.end:.3f}s) before it starts "
                                f"({cue.start:.3f}s)")
        if cue.start >= duration or cue.end > duration + END_TOLERANCE:
            raise SubtitleError(f"{where}: cue {_stamp(cue.start)} --> {_stamp(cue.end)} is "
                                f"past the video's end ({_stamp(duration)}); wrong file?")
        if out and cue.start < out[-1].start:
            raise SubtitleError(f"{where}: cue starts before the cue at line {out[-1].line}; "
                                "cues must be in time order")
        if out and cue.start < out[-1].end - 0.001:
            raise SubtitleError(f"{where}: cue overlaps the cue at line {out[-1].line} (which "
                                f"ends {_stamp(out[-1].end)})")
        out.append(Cue(cue.start, min(cue.end, duration), cue.text, cue.line))
    return out


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


HEADER = f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{MPEGTS},LOCAL:00:00:00.000\n"


def segments(cues: Sequence[Cue], durations: Sequence[float]) -> list[str]:
    """One WebVTT document per video segment (`durations` in order): the cues that overlap it,
    with their absolute times. A segment without cues is a valid, empty WebVTT document."""
    out = []
    start = 0.0
    for duration in durations:
        end = start + duration
        body = "".join(f"\n{_stamp(c.start)} --> {_stamp(c.end)}\n{c.text}\n"
                       for c in cues if c.start < end and c.end > start)
        out.append(HEADER + body)
        start = end
    return out
