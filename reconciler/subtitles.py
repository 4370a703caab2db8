"""Subtitles: WebVTT or SRT text -> checked cues -> WebVTT segments on the video's boundaries.

Pure (no I/O). A subtitle rendition is cut on the video rendition's segment boundaries, so its
playlist has the same EXTINFs as the video and the section keeps one EXT-X-TARGETDURATION.
Every segment carries `X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000`: cue times are seconds of
the CMAF timeline, whose first fragment ffmpeg writes at decode time 0, which is how hls.js
(webvtt-parser: offset = (MPEGTS - initPTS) / 90 kHz, the same offset it gives the media) and
Safari place them. A cue that spans a boundary is repeated in both segments; hls.js drops the
duplicate (same start, end and text). Every segment ends with a blank line (ffmpeg's WebVTT
reader otherwise reads the next document's header as cue text).

No text is lost on the way: SRT text is escaped into WebVTT (`a < b && c` stays that), a `<` or
`&` in WebVTT text that starts no tag or character reference is escaped too, ASS override tags
(`{\an8}`) become cue settings or are removed, cue settings and identifiers are kept.
STYLE and REGION blocks (and `region:` settings) are dropped and *said* to be: ffmpeg's WebVTT
reader stops reading a document at such a block, so keeping them would lose every cue for it,
and hls.js ignores them. Overlapping cues are published: WebVTT allows them, and multi-speaker
transcripts have them.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .errors import ReconcilerError

SEGMENT_TEMPLATE = "s_%03d.vtt"
MPEGTS = 0
# A cue may end this much after the video's last frame (transcripts round up); later is a
# mistake (the wrong file, or a file for a longer cut of the lecture).
END_TOLERANCE = 1.0
SETTINGS = f"subtitles:webvtt:mpegts{MPEGTS}:v2"
# A two-hour lecture's subtitles are a few hundred KB; a file this large is the wrong file.
MAX_BYTES = 8 * 1024 * 1024

_TIME = re.compile(r"^(?:(\d+):)?([0-5]\d):([0-5]\d)[.,](\d{3})$")
_TIMING = re.compile(r"^(\S+)[ \t]+-->[ \t]+(\S+)(?:[ \t]+(.*))?$")
_ASS_BLOCK = re.compile(r"\{\\[^{}]*\}")  # an ASS/SSA override block: {\an8}, {\i1}, {\pos(1,2)}
_ASS_ALIGN = re.compile(r"\\an([1-9])")
# Where \anN (a numeric keypad) puts the text, as WebVTT cue settings.
_ALIGN_SETTINGS = {"7": "line:0", "8": "line:0", "9": "line:0",
                   "4": "line:50%,center", "5": "line:50%,center", "6": "line:50%,center"}
_ALIGN_SIDE = {"7": "align:left", "4": "align:left", "1": "align:left",
               "9": "align:right", "6": "align:right", "3": "align:right"}
_SRT_TAG = re.compile(r"<(/?)([ibu])>|</?font(?:\s[^<>]*)?>", re.IGNORECASE)
# WebVTT's tags (class, italic, bold, underline, ruby, voice, language; timestamps) and
# character references: what a `<` or `&` in a .vtt may legitimately start.
_VTT_MARKUP = re.compile(r"</?(?:c|i|b|u|ruby|rt|v|lang)(?:\.[^\s<>.&]+)*(?:[ \t][^<>\n]*)?>"
                         r"|<(?:\d{2,}:)?\d{2}:\d{2}\.\d{3}>"
                         r"|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")


class SubtitleError(ReconcilerError, ValueError):
    """A subtitle file that cannot be published; the message names the file and line."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # WebVTT cue text: markup kept, every other `<` and `&` escaped
    line: int  # of its timing line in the input, for messages
    settings: str = ""  # WebVTT cue settings: "line:0 align:left"
    identifier: str = ""  # a WebVTT cue's identifier line


@dataclass(frozen=True)
class Subtitles:
    """A parsed file: its cues, and what of the file is not published (one line each)."""

    cues: tuple[Cue, ...]
    dropped: tuple[str, ...] = ()


def _seconds(stamp: str) -> float | None:
    found = _TIME.match(stamp)
    if found is None:
        return None
    hours, minutes, seconds, millis = found.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def check_size(size: int, label: str) -> None:
    """SubtitleError for a file over MAX_BYTES (before anyone reads it)."""
    if size > MAX_BYTES:
        raise SubtitleError(f"{label}: {size / 1e6:.1f} MB; a subtitle file may be at most "
                            f"{MAX_BYTES // 2**20} MiB (a long lecture's are under 1 MB): "
                            "the wrong file?")


def _decode(data: bytes, label: str) -> str:
    """UTF-8 (with or without a BOM) or UTF-16 with a BOM; anything else is refused with the
    command that converts it (guessing an encoding would publish mojibake when wrong)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise SubtitleError(f"{label}: not UTF-16 text after its UTF-16 byte-order mark; "
                                f"save it as UTF-8 ({_ICONV.format('UTF-16')})") from None
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise SubtitleError(f"{label}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x})"
                                f"{_guess(data)}") from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SubtitleError(f"{label}:{line}: NUL byte: not a text file, or UTF-16 without a "
                            f"byte-order mark; save it as UTF-8 ({_ICONV.format('UTF-16LE')})")
    return text.replace("\r\n", "\n").replace("\r", "\n")


_ICONV = "iconv -f {} -t UTF-8 FILE > FILE.utf8"


def _guess(data: bytes) -> str:
    """The hint for a file that is not UTF-8: Korean files are CP949 (EUC-KR) more often
    than not, and a clean CP949 decode with Hangul in it says so."""
    try:
        korean = any("\uac00" <= c <= "\ud7a3" for c in data.decode("cp949"))
    except UnicodeDecodeError:
        korean = False
    if korean:
        return f"; it reads as CP949 (EUC-KR) Korean: convert it ({_ICONV.format('CP949')})"
    return f"; save it as UTF-8 (e.g. {_ICONV.format('CP949')}, naming its encoding)"


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


def _ass(text: str) -> tuple[str, str]:
    """(text without ASS override blocks, the cue settings its last \\anN asks for)."""
    aligns = [a for block in _ASS_BLOCK.findall(text) for a in _ASS_ALIGN.findall(block)]
    settings = " ".join(x for x in (_ALIGN_SETTINGS.get(aligns[-1], ""),
                                    _ALIGN_SIDE.get(aligns[-1], "")) if x) if aligns else ""
    return _ASS_BLOCK.sub("", text), settings


def _rewrite(text: str, markup: re.Pattern, kept: Callable[[re.Match], str],
             escape: Callable[[str], str]) -> str:
    """`text` with each match of `markup` replaced by kept(match) and the text between
    matches escaped."""
    out, at = [], 0
    for found in markup.finditer(text):
        out += [escape(text[at:found.start()]), kept(found)]
        at = found.end()
    return "".join(out) + escape(text[at:])


def _srt_text(text: str) -> str:
    """SRT text as WebVTT cue text: <i> <b> <u> kept, <font> removed, all else escaped (SRT
    has no character references: `&amp;` in SRT is five characters of text)."""
    return _rewrite(text, _SRT_TAG, lambda tag: f"<{tag[1]}{tag[2].lower()}>" if tag[2] else "",
                    lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _vtt_text(text: str) -> str:
    """WebVTT cue text with every `<` that opens no tag and every `&` that starts no character
    reference escaped (a browser would swallow `< b && c >` as a tag)."""
    return _rewrite(text, _VTT_MARKUP, lambda found: found[0],
                    lambda t: t.replace("&", "&amp;").replace("<", "&lt;"))


def _merged(given: str, derived: str) -> str:
    """Cue settings: the file's own, then the derived ones it does not set."""
    names = {item.split(":", 1)[0] for item in given.split()}
    return " ".join([*given.split(), *(d for d in derived.split()
                                       if d.split(":", 1)[0] not in names)])


def _cue(label: str, number: int, timing: str, text: list[str], srt: bool,
         identifier: str = "") -> Cue:
    """One cue; `region:` settings go with the REGION blocks they name (dropped)."""
    found = _TIMING.match(timing.strip())
    start = _seconds(found[1]) if found else None
    end = _seconds(found[2]) if found else None
    if found is None or start is None or end is None:
        raise SubtitleError(f"{label}:{number}: bad cue timing {timing.strip()[:60]!r} "
                            "(expected HH:MM:SS.mmm --> HH:MM:SS.mmm)")
    body, derived = _ass("\n".join(line.rstrip() for line in text).strip())
    body = body.strip()
    if not body:
        raise SubtitleError(f"{label}:{number}: cue has no text")
    if "-->" in body:
        raise SubtitleError(f"{label}:{number}: cue text contains '-->' (a missing blank line?)")
    # SRT's own position coordinates (X1: … Y2:) mean nothing in WebVTT: dropped.
    given = "" if srt else " ".join(x for x in (found[3] or "").split()
                                    if not x.startswith("region:"))
    return Cue(start, end, _srt_text(body) if srt else _vtt_text(body), number,
               _merged(given, derived), identifier)


def parse(data: bytes, label: str) -> Subtitles:
    """Cues of a WebVTT or SRT file, told apart by content; SubtitleError naming file and
    line otherwise."""
    check_size(len(data), label)
    lines = _decode(data, label).split("\n")
    if lines[0].startswith("WEBVTT") and lines[0][6:7] in ("", " ", "\t"):
        cues: list[Cue] = []
        dropped: list[str] = []
        for number, block in _blocks(lines, 1):
            if block[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in block[0]:
                if cues and block[0].startswith(("STYLE", "REGION")):
                    raise SubtitleError(f"{label}:{number}: {block[0].split()[0]} after a cue")
                if not block[0].startswith("NOTE"):
                    dropped.append(f"{label}:{number}: {block[0].split()[0]} block dropped "
                                   "(ffmpeg's WebVTT reader stops at one; hls.js ignores it)")
                continue
            if number == 2 and "-->" not in block[0]:
                continue  # header lines right after WEBVTT (e.g. Kind:, Language:)
            timing_at = 0 if "-->" in block[0] else 1
            if timing_at >= len(block) or "-->" not in block[timing_at]:
                raise SubtitleError(f"{label}:{number}: expected a cue timing line "
                                    f"(got {block[0][:60]!r})")
            cues.append(_cue(label, number + timing_at, block[timing_at], block[timing_at + 1:],
                             srt=False, identifier=block[0].strip() if timing_at else ""))
        return Subtitles(tuple(cues), tuple(dropped))
    found = _blocks(lines, 0)
    if not found or not found[0][1][0].strip().isdigit() or len(found[0][1]) < 2 \
            or "-->" not in found[0][1][1]:
        first = found[0][0] if found else 1
        raise SubtitleError(f"{label}:{first}: neither WebVTT (no 'WEBVTT' header) nor SRT "
                            "(no numbered cue)")
    srt_cues = []
    for number, block in found:
        if not block[0].strip().isdigit() or len(block) < 2:
            raise SubtitleError(f"{label}:{number}: expected an SRT cue number and timing "
                                f"(got {block[0][:60]!r})")
        srt_cues.append(_cue(label, number + 1, block[1], block[2:], srt=True))
    return Subtitles(tuple(srt_cues))


def check(parsed: Subtitles, label: str, duration: float) -> Subtitles:
    """Cues fit to publish for a video of `duration` seconds: none empty, in time order (of
    their starts: overlapping is allowed), none past the video's end (ends within
    END_TOLERANCE are clamped)."""
    if not parsed.cues:
        raise SubtitleError(f"{label}: no cues")
    out: list[Cue] = []
    for cue in parsed.cues:
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
        out.append(replace(cue, end=min(cue.end, duration)))
    return replace(parsed, cues=tuple(out))


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


HEADER = f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{MPEGTS},LOCAL:00:00:00.000\n"


def _block(cue: Cue) -> str:
    settings = f" {cue.settings}" if cue.settings else ""
    identifier = f"{cue.identifier}\n" if cue.identifier else ""
    return f"\n{identifier}{_stamp(cue.start)} --> {_stamp(cue.end)}{settings}\n{cue.text}\n"


def segments(parsed: Subtitles, durations: Sequence[float]) -> list[str]:
    """One WebVTT document per video segment (`durations` in order): the cues that overlap
    it, with their absolute times, then a blank line. A segment without cues is a valid,
    empty WebVTT document."""
    out = []
    start = 0.0
    for duration in durations:
        end = start + duration
        body = "".join(_block(c) for c in parsed.cues if c.start < end and c.end > start)
        out.append(HEADER + body + "\n")
        start = end
    return out
