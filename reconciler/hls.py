"""HLS playlists: parse and write media playlists, write and parse master playlists.

The reconciler writes every playlist itself (ffmpeg's are rewritten) so that all playlists of a
section share one EXT-X-TARGETDURATION, name segments by bare relative URIs and always carry
`#EXT-X-MAP:URI="init.mp4"`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ReconcilerError
from .layout import INIT

AUDIO_GROUP = "aud"
SUBTITLES_GROUP = "subs"
PLAYLIST_VERSION = 7  # >= 6: EXT-X-MAP in a playlist without EXT-X-I-FRAMES-ONLY


class PlaylistError(ReconcilerError, ValueError):
    """A playlist that does not follow RFC 8216 as the reconciler needs it."""


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int
    segments: tuple[Segment, ...]
    map_uri: str | None = INIT
    endlist: bool = True

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)


_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_attributes(text: str) -> dict[str, str]:
    """`A=1,B="x,y"` -> {"A": "1", "B": "x,y"} (quotes removed)."""
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTR.findall(text)}


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("does not start with #EXTM3U")
    return [line for line in lines if line]


def parse_media(text: str) -> MediaPlaylist:
    """Parse a VOD media playlist; PlaylistError says what is wrong."""
    target: int | None = None
    map_uri: str | None = None
    segments: list[Segment] = []
    pending: float | None = None
    endlist = False
    for line in _lines(text)[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            try:
                target = int(line.split(":", 1)[1])
            except ValueError as err:
                raise PlaylistError(f"bad {line!r}") from err
        elif line.startswith("#EXT-X-MAP:"):
            map_uri = parse_attributes(line.split(":", 1)[1]).get("URI")
        elif line.startswith("#EXTINF:"):
            try:
                pending = float(line.split(":", 1)[1].split(",", 1)[0])
            except ValueError as err:
                raise PlaylistError(f"bad {line!r}") from err
        elif line == "#EXT-X-ENDLIST":
            endlist = True
        elif line.startswith("#EXT-X-STREAM-INF") or line.startswith("#EXT-X-MEDIA:"):
            raise PlaylistError("is a master playlist, not a media playlist")
        elif not line.startswith("#"):
            if pending is None:
                raise PlaylistError(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(line, pending))
            pending = None
    if target is None:
        raise PlaylistError("has no #EXT-X-TARGETDURATION")
    return MediaPlaylist(target, tuple(segments), map_uri, endlist)


def target_duration(durations: Iterable[float]) -> int:
    """RFC 8216: every EXTINF rounded to the nearest integer must be <= the target."""
    return max((math.floor(d + 0.5) for d in durations), default=1) or 1


def section_target(playlists: Iterable[MediaPlaylist]) -> int:
    """The one EXT-X-TARGETDURATION all playlists of a section share: the largest any of them
    needs. Plan (what to rewrite) and apply (what it writes) both use this one rule."""
    return max(target_duration(s.duration for s in p.segments) for p in playlists)


def _splits(char: str) -> bool:
    """A character a line splitter (str.splitlines, RFC 8216's CR/LF) would break a line on."""
    return len(f"a{char}b".splitlines()) > 1


def _line_safe(value: str, what: str) -> str:
    """A value that stays on its own line: no line break of any kind and no control character
    (C0, DEL, C1). Refused, never escaped: HLS has no escape syntax."""
    bad = next((c for c in value if _splits(c) or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        raise PlaylistError(f"{what} {value[:80]!r} contains {bad!r}, which a playlist cannot "
                            "carry")
    return value


def quoted(value: str, what: str) -> str:
    """An RFC 8216 quoted-string: `"value"`; a DQUOTE, CR, LF, any other line break or control
    character in the value is refused (PlaylistError)."""
    if '"' in value:
        raise PlaylistError(f"{what} {value[:80]!r} contains '\"', which a quoted-string "
                            "cannot carry")
    return f'"{_line_safe(value, what)}"'


def render_media(playlist: MediaPlaylist) -> str:
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{PLAYLIST_VERSION}",
        f"#EXT-X-TARGETDURATION:{playlist.target_duration}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if playlist.map_uri is not None:  # fMP4 renditions; WebVTT segments have no init
        lines.append(f"#EXT-X-MAP:URI={quoted(playlist.map_uri, 'EXT-X-MAP URI')}")
    for seg in playlist.segments:
        lines += [f"#EXTINF:{seg.duration:.6f},", _line_safe(seg.uri, "segment URI")]
    if playlist.endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def bitrates(playlist: MediaPlaylist, sizes: Mapping[str, int]) -> tuple[int, int]:
    """(peak, average) bits per second from segment sizes, as BANDWIDTH and AVERAGE-BANDWIDTH
    define them. Sizes are looked up by segment URI; a missing size raises KeyError."""
    peak = 0.0
    total_bytes = 0
    total_time = 0.0
    for seg in playlist.segments:
        size = sizes[seg.uri]
        total_bytes += size
        total_time += seg.duration
        if seg.duration > 0:
            peak = max(peak, size * 8 / seg.duration)
    avg = total_bytes * 8 / total_time if total_time else 0.0
    return math.ceil(peak), math.ceil(avg)


@dataclass(frozen=True)
class VideoVariant:
    """Facts of the video rendition that the EXT-X-STREAM-INF line states."""

    codec: str
    width: int
    height: int
    frame_rate: float | None
    peak_bps: int
    avg_bps: int
    uri: str = "video/video.m3u8"


@dataclass(frozen=True)
class AudioRendition:
    """One language's EXT-X-MEDIA line plus the bit rates the variant must budget for."""

    language: str
    name: str
    default: bool
    codec: str
    channels: int
    peak_bps: int
    avg_bps: int
    uri: str


@dataclass(frozen=True)
class SubtitleRendition:
    """One language's TYPE=SUBTITLES line (never DEFAULT: learners turn subtitles on)."""

    language: str
    name: str
    uri: str


def render_master(video: VideoVariant, audios: list[AudioRendition],
                  subtitles: list[SubtitleRendition] | None = None) -> str:
    """master.m3u8: one audio group, one subtitles group (only when there are subtitles, so a
    master without them is unchanged), one variant. Exactly one DEFAULT=YES when audios exist.
    A value a quoted-string cannot carry raises PlaylistError (nothing is escaped)."""
    if audios and sum(a.default for a in audios) != 1:
        raise ValueError("exactly one audio rendition must be the default")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{PLAYLIST_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for a in audios:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME={quoted(a.name, "NAME")},'
            f'LANGUAGE={quoted(a.language, "LANGUAGE")},AUTOSELECT=YES,'
            f'DEFAULT={"YES" if a.default else "NO"},'
            f'CHANNELS="{a.channels}",URI={quoted(a.uri, "URI")}'
        )
    for t in subtitles or []:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLES_GROUP}",'
            f'NAME={quoted(t.name, "NAME")},LANGUAGE={quoted(t.language, "LANGUAGE")},'
            f'AUTOSELECT=YES,DEFAULT=NO,FORCED=NO,URI={quoted(t.uri, "URI")}'
        )
    codecs = [video.codec] + sorted({a.codec for a in audios})
    peak = video.peak_bps + max((a.peak_bps for a in audios), default=0)
    avg = video.avg_bps + max((a.avg_bps for a in audios), default=0)
    attrs = [
        f"BANDWIDTH={peak}",
        f"AVERAGE-BANDWIDTH={avg}",
        f'CODECS={quoted(",".join(codecs), "CODECS")}',
        f"RESOLUTION={video.width}x{video.height}",
    ]
    if video.frame_rate:
        attrs.append(f"FRAME-RATE={video.frame_rate:.3f}")
    if audios:
        attrs.append(f'AUDIO="{AUDIO_GROUP}"')
    if subtitles:
        attrs.append(f'SUBTITLES="{SUBTITLES_GROUP}"')
    lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), _line_safe(video.uri, "variant URI")]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class MasterPlaylist:
    media: tuple[dict[str, str], ...]  # EXT-X-MEDIA attribute dicts
    variants: tuple[tuple[dict[str, str], str], ...]  # (EXT-X-STREAM-INF attributes, URI)

    def audio_uris(self) -> dict[str, str]:
        """LANGUAGE -> URI of each audio rendition."""
        return self.uris("AUDIO")

    def uris(self, media_type: str) -> dict[str, str]:
        """LANGUAGE -> URI of each rendition of a TYPE (AUDIO, SUBTITLES)."""
        return {
            m.get("LANGUAGE", ""): m["URI"]
            for m in self.media
            if m.get("TYPE") == media_type and "URI" in m
        }


def parse_master(text: str) -> MasterPlaylist:
    media: list[dict[str, str]] = []
    variants: list[tuple[dict[str, str], str]] = []
    pending: dict[str, str] | None = None
    for line in _lines(text)[1:]:
        if line.startswith("#EXT-X-MEDIA:"):
            media.append(parse_attributes(line.split(":", 1)[1]))
        elif line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line.split(":", 1)[1])
        elif line.startswith("#EXTINF"):
            raise PlaylistError("is a media playlist, not a master playlist")
        elif not line.startswith("#") and pending is not None:
            variants.append((pending, line))
            pending = None
    if not variants:
        raise PlaylistError("has no #EXT-X-STREAM-INF variant")
    return MasterPlaylist(tuple(media), tuple(variants))
