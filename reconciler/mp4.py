"""Read the facts a master playlist needs from an fMP4 init segment (ISO BMFF boxes), and the
timing of media segments' movie fragments as an MSE player reads it (tfdt, trun).

ffprobe reports the H.264 profile and level but not the constraint-flags byte that the
RFC 6381 codec string carries (`avc1.PPCCLL`), so we read the avcC box ourselves; the init
segment is a few hundred bytes, so this costs one small GET, never media bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ReconcilerError

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"edts", b"dinf", b"udta",
              b"moof", b"traf"}


class InitSegmentError(ReconcilerError, ValueError):
    """The bytes are not an init segment we can describe."""


@dataclass(frozen=True)
class TrackInfo:
    kind: str  # "video" | "audio"
    codec: str  # RFC 6381, e.g. avc1.64001f or mp4a.40.2
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    sample_rate: int | None = None


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield (type, payload_start, box_end) for each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise InitSegmentError(f"truncated {kind!r} box at byte {pos}")
        yield kind, pos + header, pos + size
        pos += size


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None):
    """All boxes matching a path of types below [start, end)."""
    for kind, body, box_end in _boxes(data, start, end):
        if kind != path[0]:
            continue
        if len(path) == 1:
            yield body, box_end
        elif kind in CONTAINERS:
            yield from _find(data, path[1:], body, box_end)


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, body_start, body_end) of an MPEG-4 descriptor (variable-length size)."""
    tag = data[pos]
    pos += 1
    length = 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, pos + length


@dataclass(frozen=True)
class _AudioConfig:
    codec: str
    channels: int | None = None
    sample_rate: int | None = None


AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
             7350)


def _audio_specific_config(oti: int, data: bytes, pos: int, end: int) -> _AudioConfig:
    """AudioSpecificConfig (ISO 14496-3): object type, sampling rate, channel configuration.
    The sample entry's own channelcount is always 2 in ffmpeg's output, so read it here."""
    bits = int.from_bytes(data[pos:end], "big")
    total = (end - pos) * 8
    cursor = 0

    def take(n: int) -> int:
        nonlocal cursor
        if cursor + n > total:
            raise InitSegmentError("truncated AudioSpecificConfig")
        cursor += n
        return (bits >> (total - cursor)) & ((1 << n) - 1)

    aot = take(5)
    if aot == 31:
        aot = 32 + take(6)
    index = take(4)
    rate = take(24) if index == 0x0F else (AAC_RATES[index] if index < len(AAC_RATES) else None)
    channel_config = take(4)
    channels = {7: 8}.get(channel_config, channel_config) or None
    return _AudioConfig(f"mp4a.{oti:02x}.{aot}", channels, rate)


def _mp4a_config(data: bytes, esds_body: int, esds_end: int) -> _AudioConfig:
    tag, pos, end = _descriptor(data, esds_body + 4)  # skip full-box version/flags
    if tag != 0x03:
        raise InitSegmentError("esds without ES_Descriptor")
    flags = data[pos + 2]
    pos += 3
    if flags & 0x80:
        pos += 2
    if flags & 0x40:
        pos += 1 + data[pos]
    if flags & 0x20:
        pos += 2
    tag, pos, end = _descriptor(data, pos)
    if tag != 0x04:
        raise InitSegmentError("esds without DecoderConfigDescriptor")
    oti = data[pos]
    pos += 13
    if pos >= end:
        return _AudioConfig(f"mp4a.{oti:02x}")
    tag, pos, dsi_end = _descriptor(data, pos)
    if tag != 0x05 or oti != 0x40:
        return _AudioConfig(f"mp4a.{oti:02x}")
    return _audio_specific_config(oti, data, pos, min(dsi_end, esds_end))


def _sample_entry(data: bytes, body: int, end: int) -> TrackInfo:
    # stsd: version/flags (4) + entry_count (4), then the first sample entry box.
    for kind, entry, entry_end in _boxes(data, body + 8, end):
        if kind in (b"avc1", b"avc3"):
            width, height = struct.unpack_from(">HH", data, entry + 24)
            for child, cbody, _ in _boxes(data, entry + 78, entry_end):
                if child == b"avcC":
                    if cbody + 4 > len(data):
                        raise InitSegmentError("truncated avcC box")
                    profile, compat, level = data[cbody + 1 : cbody + 4]
                    codec = f"{kind.decode()}.{profile:02x}{compat:02x}{level:02x}"
                    return TrackInfo("video", codec, width=width, height=height)
            raise InitSegmentError("avc1 sample entry without avcC")
        if kind == b"mp4a":
            channels = struct.unpack_from(">H", data, entry + 16)[0]
            rate = struct.unpack_from(">I", data, entry + 24)[0] >> 16
            for child, cbody, cend in _boxes(data, entry + 28, entry_end):
                if child == b"esds":
                    conf = _mp4a_config(data, cbody, cend)
                    return TrackInfo("audio", conf.codec, channels=conf.channels or channels,
                                     sample_rate=conf.sample_rate or rate)
            raise InitSegmentError("mp4a sample entry without esds")
        raise InitSegmentError(f"unsupported sample entry {kind.decode(errors='replace')}")
    raise InitSegmentError("empty stsd box")


def read_tracks(data: bytes) -> list[TrackInfo]:
    """Every track of an init segment, in order."""
    try:
        tracks = [
            _sample_entry(data, body, end)
            for body, end in _find(data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
        ]
    except (IndexError, struct.error) as err:
        raise InitSegmentError(f"malformed init segment: {err}") from err
    if not tracks:
        raise InitSegmentError("no moov/trak in init segment")
    return tracks


def read_track(data: bytes, kind: str) -> TrackInfo:
    """The first track of a kind ("video"/"audio"); InitSegmentError when there is none."""
    for track in read_tracks(data):
        if track.kind == kind:
            return track
    raise InitSegmentError(f"init segment has no {kind} track")


def _full_box_field(data: bytes, body: int, v0: int, v1: int) -> int:
    """A 32-bit field of a full box at offset v0 (version 0) or v1 (version 1) of its body."""
    return struct.unpack_from(">I", data, body + (v1 if data[body] == 1 else v0))[0]


def frame_rate(init: bytes, segment: bytes) -> float | None:
    """Frames per second of a video rendition, from its init (the track's timescale) and one
    media segment (its samples and their durations): the stream's own timing, which neither
    the playlist nor the init states. None when the bytes do not say (no video track, no
    samples); InitSegmentError when they are malformed."""
    try:
        track = timescale = None
        for body, end in _find(init, [b"moov", b"trak"]):
            handler = next(_find(init, [b"mdia", b"hdlr"], body, end), None)
            if handler is not None and init[handler[0] + 8:handler[0] + 12] == b"vide":
                track = _full_box_field(init, next(_find(init, [b"tkhd"], body, end))[0], 12, 20)
                timescale = _full_box_field(
                    init, next(_find(init, [b"mdia", b"mdhd"], body, end))[0], 12, 20)
                break
        if track is None or not timescale:
            return None
        default = next((struct.unpack_from(">I", init, b + 12)[0]
                        for b, _ in _find(init, [b"moov", b"mvex", b"trex"])
                        if struct.unpack_from(">I", init, b + 4)[0] == track), 0)
        samples = ticks = 0
        for body, end in _find(segment, [b"moof", b"traf"]):
            tfhd = next(_find(segment, [b"tfhd"], body, end))[0]
            flags = int.from_bytes(segment[tfhd + 1:tfhd + 4], "big")
            if struct.unpack_from(">I", segment, tfhd + 4)[0] != track:
                continue
            pos = tfhd + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            duration = struct.unpack_from(">I", segment, pos)[0] if flags & 0x08 else default
            for trun, _ in _find(segment, [b"trun"], body, end):
                flags = int.from_bytes(segment[trun + 1:trun + 4], "big")
                count = struct.unpack_from(">I", segment, trun + 4)[0]
                pos = trun + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
                stride = 4 * bin(flags & 0xF00).count("1")
                samples += count
                ticks += (sum(struct.unpack_from(">I", segment, pos + i * stride)[0]
                              for i in range(count)) if flags & 0x100 else count * duration)
    except (IndexError, StopIteration, struct.error) as err:
        raise InitSegmentError(f"malformed init or media segment: {err}") from err
    return round(samples * timescale / ticks, 3) if samples and ticks else None


class FragmentError(InitSegmentError):
    """The bytes are not movie fragments whose timing we can read."""


@dataclass(frozen=True)
class Sample:
    """One sample's timing in its track's timescale, as an MSE player derives it from the
    fragment alone (tfdt, durations, signed composition offsets; never an edit list)."""

    decode: int
    presentation: int
    duration: int


def timescale(init: bytes) -> int:
    """Ticks per second of the init segment's first track (its mdhd)."""
    for body, _end in _find(init, [b"moov", b"trak", b"mdia", b"mdhd"]):
        version = init[body]
        return struct.unpack_from(">I", init, body + (20 if version == 1 else 12))[0]
    raise InitSegmentError("init segment has no mdhd box")


def _default_duration(data: bytes, tfhd: int) -> int | None:
    """tfhd's default-sample-duration, when present (ffmpeg writes it for constant durations)."""
    flags = int.from_bytes(data[tfhd + 1 : tfhd + 4], "big")
    pos = tfhd + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
    return struct.unpack_from(">I", data, pos)[0] if flags & 0x08 else None


def _run_samples(data: bytes, trun: int, start: int, default: int | None) -> list[Sample]:
    """The samples of one trun starting at decode time `start`."""
    version, flags = data[trun], int.from_bytes(data[trun + 1 : trun + 4], "big")
    count = struct.unpack_from(">I", data, trun + 4)[0]
    pos = trun + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    samples = []
    for _ in range(count):
        duration, offset = default, 0
        if flags & 0x100:
            duration = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        pos += (4 if flags & 0x200 else 0) + (4 if flags & 0x400 else 0)
        if flags & 0x800:
            offset = struct.unpack_from(">i" if version == 1 else ">I", data, pos)[0]
            pos += 4
        if duration is None:
            raise FragmentError("trun sample without a duration (none in tfhd either)")
        samples.append(Sample(start, start + offset, duration))
        start += duration
    return samples


def read_samples(segment: bytes) -> list[Sample]:
    """Every sample of a media segment's movie fragments, in decode order."""
    samples: list[Sample] = []
    try:
        for moof, moof_end in _find(segment, [b"moof"]):
            for traf, traf_end in _find(segment, [b"traf"], moof, moof_end):
                tfhd = next(_find(segment, [b"tfhd"], traf, traf_end))[0]
                tfdt = next(_find(segment, [b"tfdt"], traf, traf_end))[0]
                start = struct.unpack_from(">Q" if segment[tfdt] == 1 else ">I", segment,
                                           tfdt + 4)[0]
                default = _default_duration(segment, tfhd)
                for trun, _ in _find(segment, [b"trun"], traf, traf_end):
                    run = _run_samples(segment, trun, start, default)
                    samples += run
                    start = run[-1].decode + run[-1].duration if run else start
    except FragmentError:
        raise
    except (InitSegmentError, IndexError, StopIteration, struct.error) as err:
        raise FragmentError(f"malformed movie fragment: {err}") from err
    if not samples:
        raise FragmentError("no movie fragment with samples")
    return samples


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """(everything before the first moof, the rest): a file that opens with ftyp+moov and
    goes on with movie fragments split into its init segment and its first media segment."""
    try:
        first = next(body - 8 for kind, body, _end in _boxes(data) if kind == b"moof")
    except StopIteration as err:
        raise FragmentError("no movie fragment") from err
    except InitSegmentError as err:
        raise FragmentError(str(err)) from err
    return data[:first], data[first:]
