"""Build real multi-language CMAF HLS sections for tests, and run the preview in a thread.

`make_section(store, 101, {"ko": 440, "en": 880})` uploads a complete section (master, video
rendition, one audio rendition per language whose audio is a pure tone of the given frequency)
with the metadata table's headers, the same layout the reconciler's pipeline produces.

ffmpeg runs once per distinct rendition per test session: renditions are cached in a temporary
directory and copied into each test's store, so tests stay fast and independent.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler import hls, layout, mp4

FPS = 25
KEYFRAME_SECONDS = 2
SEGMENT_SECONDS = 4
SAMPLE_RATE = 48000
LANGUAGE_NAMES = {"ko": "Korean", "en": "English", "ja": "Japanese", "zh": "Chinese",
                  "es": "Spanish", "fr": "French", "de": "German", "vi": "Vietnamese"}

_cache_dir: Path | None = None
_cache: dict[tuple, Path] = {}
_cache_lock = threading.Lock()


def _cache_root() -> Path:
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = Path(tempfile.mkdtemp(prefix="reconciler-media-"))
        atexit.register(shutil.rmtree, _cache_dir, True)
    return _cache_dir


def _ffmpeg(args: list[str]) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def _hls_args(out: Path, playlist: str, segment_template: str) -> list[str]:
    return [
        "-f", "hls",
        "-hls_time", str(SEGMENT_SECONDS),
        "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4",
        "-hls_fmp4_init_filename", layout.INIT,
        "-hls_segment_filename", str(out / segment_template),
        str(out / playlist),
    ]


def video_rendition(seconds: int) -> Path:
    """Directory with video.m3u8, init.mp4, v_NNN.m4s: 320x180 H.264, keyframe every 2 s."""
    key = ("video", seconds)
    with _cache_lock:
        if key not in _cache:
            out = _cache_root() / f"video-{seconds}s"
            out.mkdir()
            _ffmpeg([
                "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}:duration={seconds}",
                "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
                "-pix_fmt", "yuv420p", "-g", str(FPS * KEYFRAME_SECONDS),
                "-keyint_min", str(FPS * KEYFRAME_SECONDS), "-sc_threshold", "0", "-an",
                *_hls_args(out, layout.VIDEO_PLAYLIST, layout.VIDEO_SEGMENT_TEMPLATE),
            ])
            _cache[key] = out
        return _cache[key]


def audio_rendition(tone_hz: int, seconds: int) -> Path:
    """Directory with audio.m3u8, init.mp4, a_NNN.m4s: stereo AAC, a pure sine at tone_hz."""
    key = ("audio", tone_hz, seconds)
    with _cache_lock:
        if key not in _cache:
            out = _cache_root() / f"audio-{tone_hz}hz-{seconds}s"
            out.mkdir()
            wave = f"0.5*sin(2*PI*{tone_hz}*t)"
            _ffmpeg([
                "-f", "lavfi",
                "-i", f"aevalsrc=exprs={wave}|{wave}:c=stereo:s={SAMPLE_RATE}:d={seconds}",
                "-c:a", "aac", "-b:a", "96k", "-ac", "2",
                *_hls_args(out, layout.AUDIO_PLAYLIST, layout.AUDIO_SEGMENT_TEMPLATE),
            ])
            _cache[key] = out
        return _cache[key]


def make_section(store, section_id: int, langs: dict[str, int], seconds: int = 8) -> None:
    """Upload a complete section: one video rendition plus one audio rendition per language.

    langs maps language code -> tone frequency in Hz; the first language is DEFAULT=YES. Media
    playlists are rewritten with one TARGETDURATION for the whole section and the master is
    written by `reconciler.hls.render_master`, as the pipeline does.
    """
    sources: dict[str | None, Path] = {None: video_rendition(seconds)}
    for code, tone in langs.items():
        sources[code] = audio_rendition(tone, seconds)

    playlists = {
        lang: hls.parse_media((src / layout.playlist_name(lang)).read_text())
        for lang, src in sources.items()
    }
    target = max(p.target_duration for p in playlists.values())

    video_variant: hls.VideoVariant | None = None
    audios: list[hls.AudioRendition] = []
    for lang, src in sources.items():
        prefix = layout.rendition_dir(section_id, lang)
        media = playlists[lang]
        uploads = [layout.INIT] + [seg.uri for seg in media.segments]
        for name in uploads:
            key = prefix + name
            store.put_file(key, src / name, layout.meta_for(key))
        rewritten = hls.MediaPlaylist(target, media.segments, layout.INIT, True)
        key = prefix + layout.playlist_name(lang)
        store.put_bytes(key, hls.render_media(rewritten).encode(), layout.meta_for(key))

        sizes = {seg.uri: (src / seg.uri).stat().st_size for seg in media.segments}
        peak, avg = hls.bitrates(media, sizes)
        init = (src / layout.INIT).read_bytes()
        if lang is None:
            track = mp4.read_track(init, "video")
            video_variant = hls.VideoVariant(
                track.codec, track.width or 320, track.height or 180, float(FPS), peak, avg,
                layout.master_uri(None),
            )
        else:
            track = mp4.read_track(init, "audio")
            audios.append(hls.AudioRendition(
                lang, LANGUAGE_NAMES.get(lang, lang), not audios, track.codec,
                track.channels or 2, peak, avg, layout.master_uri(lang),
            ))
    assert video_variant is not None
    master = hls.render_master(video_variant, audios)
    key = layout.master_key(section_id)
    store.put_bytes(key, master.encode(), layout.meta_for(key))


@contextmanager
def running(server) -> Iterator[str]:
    """Serve a preview server (from `reconciler.preview.make_server`) in a thread; yield its
    base URL (no trailing slash) and shut it down afterwards."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
