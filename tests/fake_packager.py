"""A Packager stand-in for plan/apply tests where ffmpeg is not what is under test.

It never runs a process: it writes canned renditions with the names layout.py gives them - a
minimal init segment (read by mp4.read_track like ffmpeg's), 4-second segments and the media
playlist - and hands finished segments over while "packaging", as the ffmpeg packager does. An
input whose file name is in `fails` makes packaging fail after segments went out early (as a
cut-short file does with ffmpeg), so tests can check what a failure leaves published.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

from reconciler import layout, packager
from reconciler.hls import MediaPlaylist, Segment, render_media

SEGMENT_SECONDS = 4.0


def box(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def init_with(entry: bytes) -> bytes:
    """A minimal init segment whose only stsd entry is `entry`."""
    stsd = box(b"stsd", bytes(4) + struct.pack(">I", 1) + entry)
    return box(b"ftyp", b"iso6") + box(b"moov", box(b"trak", box(b"mdia", box(b"minf", box(
        b"stbl", stsd)))))


def avc1(avcc_body: bytes) -> bytes:
    return box(b"avc1", bytes(24) + struct.pack(">HH", 64, 48) + bytes(50)
               + box(b"avcC", avcc_body))


def mp4a_aac_lc_48k_stereo() -> bytes:
    """An mp4a sample entry whose esds says AAC-LC, 48 kHz, 2 channels (codec mp4a.40.2)."""
    dsi = b"\x05\x02\x11\x90"  # AudioSpecificConfig: AOT 2, rate index 3, channel config 2
    dcd = b"\x04" + bytes([13 + len(dsi)]) + b"\x40\x15" + bytes(11) + dsi
    esd = b"\x03" + bytes([3 + len(dcd)]) + b"\x00\x01\x00" + dcd
    entry = bytes(16) + struct.pack(">H", 2) + bytes(6) + struct.pack(">I", 48000 << 16)
    return box(b"mp4a", entry + box(b"esds", bytes(4) + esd))


VIDEO_INIT = init_with(avc1(b"\x01\x64\x00\x1f\xff"))
AUDIO_INIT = init_with(mp4a_aac_lc_48k_stereo())


class FakePackager:
    """Writes canned renditions `duration` seconds long; records every call in `calls`."""

    def __init__(self, duration: float = 8.0, fails: set[str] | None = None) -> None:
        self.duration = duration
        self.fails = fails or set()
        self.calls: list[tuple[str, str]] = []
        self.handed: list[str] = []  # segments handed over while "packaging"

    def _write(self, out_dir: Path, init: bytes, playlist: str, template: str, seconds: float,
               source: Path, on_segment: packager.OnSegment | None,
               on_progress: packager.OnProgress | None) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / layout.INIT).write_bytes(init)
        count = max(1, round(seconds / SEGMENT_SECONDS))
        segments = []
        for i in range(count):
            name = template % i
            (out_dir / name).write_bytes(b"canned media " + name.encode())
            segments.append(Segment(name, seconds / count))
            if on_progress is not None:
                on_progress(seconds * (i + 1) / count, seconds)
            if i and on_segment is not None:  # the previous one is finished
                self.handed.append(template % (i - 1))
                on_segment(out_dir / (template % (i - 1)))
        if source.name in self.fails:
            raise packager.MediaError(f"{source.name}: canned failure after {count} segment(s)")
        text = render_media(MediaPlaylist(int(SEGMENT_SECONDS), tuple(segments)))
        (out_dir / playlist).write_text(text)

    def probe(self, source: Path, label: str | None = None) -> packager.MediaInfo:
        """Any file is a video of `duration` seconds, as the renditions written say."""
        self.calls.append(("probe", source.name))
        return packager.MediaInfo(self.duration, "h264", 64, 48, 25.0, 1)

    def package_video(self, source: Path, out_dir: Path,
                      on_segment: packager.OnSegment | None = None,
                      on_progress: packager.OnProgress | None = None, *,
                      info: packager.MediaInfo | None = None) -> packager.MediaInfo:
        self.calls.append(("package_video", source.name))
        self._write(out_dir, VIDEO_INIT, layout.VIDEO_PLAYLIST, layout.VIDEO_SEGMENT_TEMPLATE,
                    self.duration, source, on_segment, on_progress)
        return packager.MediaInfo(self.duration, "h264", 64, 48, 25.0, 1)

    def examine_audio(self, source: Path, *, from_video: bool = False,
                      info: packager.MediaInfo | None = None) -> packager.Examined:
        self.calls.append(("examine_audio", source.name))
        info = info or packager.MediaInfo(self.duration, None, None, None, None, 1)
        return packager.Examined(source, info, packager.Loudness(-20.0, -12.0))

    def encode_audio(self, examined: packager.Examined, out_dir: Path, *,
                     segments: Sequence[float], on_segment: packager.OnSegment | None = None,
                     on_progress: packager.OnProgress | None = None) -> packager.MediaInfo:
        self.calls.append(("encode_audio", examined.source.name))
        duration = sum(segments)
        self._write(out_dir, AUDIO_INIT, layout.AUDIO_PLAYLIST, layout.AUDIO_SEGMENT_TEMPLATE,
                    duration, examined.source, on_segment, on_progress)
        return packager.MediaInfo(duration, None, None, None, None, 1)

    def extract_audio(self, source: Path, dest: Path, *,
                      info: packager.MediaInfo | None = None) -> Path:
        self.calls.append(("extract_audio", source.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return dest
