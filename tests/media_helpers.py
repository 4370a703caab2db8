"""Real multi-language CMAF HLS sections for tests, made by the reconciler's own pipeline, and
the preview server run in a thread.

`make_section(store, 101, {"ko": 440, "en": 880})` publishes a complete section whose audio
renditions are pure tones of the given frequencies (so a test can hear which one plays). The
section is built once per (languages, duration) with `reconcile --apply` on a local store and
copied object by object (headers included) into each test's store, so tests stay fast and
independent.

A/V timing: `make_flash_click_video` flashes and clicks at the same instants (B-frames and AAC
priming included); `presented_flashes` / `presented_clicks` say when a published rendition shows
and plays them as an MSE player does (fragment timestamps, no edit lists).
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from reconciler import engine, hls, layout, samples
from reconciler.mp4 import Sample, read_samples, timescale
from reconciler.store import open_store

TEMPLATE_ID = 1
_cache_dir: Path | None = None
_cache: dict[tuple, Path] = {}
_cache_lock = threading.Lock()


def _cache_root() -> Path:
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = Path(tempfile.mkdtemp(prefix="reconciler-media-"))
        atexit.register(shutil.rmtree, _cache_dir, True)
    return _cache_dir


def _template(langs: dict[str, int], seconds: int, texts: dict[str, str] | None = None) -> Path:
    """A local store holding section TEMPLATE_ID, applied by the real engine (cached). With
    subtitles, when the same section without them is built already, its folder is copied and
    the subtitles are added by an apply onto it (the renditions are complete, so nothing is
    encoded again): the same section a fresh apply publishes, as convergence promises."""
    key = (tuple(langs.items()), seconds, tuple((texts or {}).items()))
    plain = (tuple(langs.items()), seconds, ())
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        root = _cache_root() / f"t{len(_cache)}"
        if plain in _cache:
            shutil.copytree(_cache[plain].parent, root)
        else:
            (root / ".git").mkdir(parents=True)
            samples.make_video(root / "video.mp4", seconds=seconds, size="320x180", tone_hz=None)
            for code, hz in langs.items():
                samples.make_tone(root / f"{code}.m4a", hz=hz, seconds=seconds)
        languages = []
        for i, code in enumerate(langs):
            languages.append({"code": code, "audio": f"{code}.m4a", "default": i == 0})
            if code in (texts or {}):
                (root / f"{code}.vtt").write_text(texts[code], encoding="utf-8")
                languages[-1]["subtitles"] = f"{code}.vtt"
        _cache[key] = publish(root, {"sectionId": TEMPLATE_ID, "video": "video.mp4",
                                     "languages": languages})
        return _cache[key]


def publish(root: Path, manifest: dict) -> Path:
    """Apply one section's manifest (its files in `root`, a git checkout stand-in) with the
    real engine to a local store in root/store; that store's folder."""
    (root / ".git").mkdir(parents=True, exist_ok=True)
    (root / "section.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    settings = engine.Settings(store_url=f"file://{root / 'store'}", tmp_dir=root)
    outcome = engine.Reconciler(settings).apply(engine.load([root / "section.yaml"]))
    if not outcome.ok:
        raise RuntimeError(f"could not build a test section: {outcome.results}")
    return root / "store"


def make_section(store, section_id: int, langs: dict[str, int], seconds: int = 5,
                 texts: dict[str, str] | None = None) -> None:
    """Publish a complete section: video plus one tone rendition per language (the first is
    DEFAULT=YES) and a subtitle rendition per WebVTT text in `texts` (language -> file), with
    the metadata table's headers, as `reconcile --apply` writes it."""
    template = open_store(f"file://{_template(langs, seconds, texts)}")
    source_prefix = layout.section_prefix(TEMPLATE_ID)
    target_prefix = layout.section_prefix(section_id)
    master = layout.master_key(TEMPLATE_ID)
    keys = sorted(template.list(source_prefix), key=lambda k: k == master)  # master last
    for key in keys:
        body, info = template.get(key)
        store.put_bytes(target_prefix + key[len(source_prefix):], body,
                        layout.meta_for(key).stamped(info.meta.user_metadata))


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


# -- A/V timing: a flash and a click every second, measured as an MSE player presents them --------

EVENT_HZ = 4000  # the click's pitch: far above the bed, so a high-pass isolates it
# Each language's bed (a steady tone under the clicks) has its own pitch, so a player test can
# tell which language it hears; all click at the same instants.
BEDS = {"ko": 440, "en": 660, "ja": 880}
CUES = [(1.0, 2.0), (5.0, 6.5), (9.0, 10.0)]  # ko subtitles, none across a 4 s boundary


def _clicking(bed_hz: int) -> str:
    return (f"0.25*sin(2*PI*{bed_hz}*t)"
            f"+if(lt(mod(t,1),0.005)*gt(t,0.5),0.25*sin(2*PI*{EVENT_HZ}*t),0)")


def event_times(seconds: int) -> list[float]:
    """When the source flashes and clicks: every whole second but the first and last."""
    return [float(t) for t in range(1, seconds)]


def make_flash_click_video(dest: Path, seconds: int = 12, size: str = "160x90",
                           bed_hz: int = BEDS["ko"]) -> Path:
    """A lecture stand-in whose picture flashes white for one frame (24 fps) and whose audio
    clicks (5 ms at 4 kHz over a steady bed) at each of `event_times`, in the same instant.
    x264's default B-frames give the video a composition delay and AAC its priming: the two
    offsets a packager must not let through."""
    flash = "drawbox=c=white:t=fill:enable='gt(n,0)*eq(mod(n,24),0)'"
    return samples._ffmpeg(
        ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=24:d={seconds},{flash}",
         "-f", "lavfi", "-i", f"aevalsrc='{_clicking(bed_hz)}':s=48000:d={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "48",
         "-keyint_min", "48", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k", "-ac", "2"],
        dest)


def make_clicks(dest: Path, seconds: int = 12, bed_hz: int = BEDS["ko"],
                rate: int = 44100) -> Path:
    """The same clicks as a separate audio file (a supplied file; as .mp3 at 44.1 kHz, what
    ElevenLabs returns for a dub); the codec follows the suffix."""
    return samples._ffmpeg(["-f", "lavfi", "-i",
                            f"aevalsrc='{_clicking(bed_hz)}':s={rate}:d={seconds}", "-ac", "2"],
                           dest)


def flash_click_section(section_id: int, seconds: int = 12) -> Path:
    """A local store holding a published flash-and-click section (cached): ko from the video's
    own track (with CUES as subtitles), en from a supplied .m4a, ja from a supplied .mp3 (the
    shape of a downloaded dub), each over its own bed (BEDS)."""
    key = ("flash-click", section_id, seconds)
    with _cache_lock:
        if key not in _cache:
            root = _cache_root() / f"t{len(_cache)}"
            root.mkdir(parents=True)
            make_flash_click_video(root / "lecture.mp4", seconds)
            make_clicks(root / "en.m4a", seconds, BEDS["en"])
            make_clicks(root / "ja.mp3", seconds, BEDS["ja"])
            (root / "ko.vtt").write_text("WEBVTT\n" + "".join(
                f"\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\nko {i}\n"
                for i, (a, b) in enumerate(CUES, 1)))
            _cache[key] = publish(root, {"sectionId": section_id, "video": "lecture.mp4",
                                         "languages": [
                {"code": "ko", "audio": "source", "default": True, "subtitles": "ko.vtt"},
                {"code": "en", "audio": "en.m4a"}, {"code": "ja", "audio": "ja.mp3"}]})
        return _cache[key]


def _joined(rendition: Path, playlist: str) -> tuple[Path, list[Sample], int]:
    """init + segments of a published rendition folder in playlist order as one file, with
    every sample's timing read from the fragments and the track's timescale."""
    listed = hls.parse_media((rendition / playlist).read_text())
    init = (rendition / layout.INIT).read_bytes()
    parts = [(rendition / s.uri).read_bytes() for s in listed.segments]
    joined = rendition / "joined.mp4"
    joined.write_bytes(init + b"".join(parts))
    return joined, [s for part in parts for s in read_samples(part)], timescale(init)


def _decoded(joined: Path, stream: str, filters: str) -> str:
    """ffmpeg's log of decoding a stream through `filters`, edit lists ignored as MSE does."""
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-ignore_editlist", "1",
         "-i", str(joined), "-map", f"0:{stream}:0", f"-{stream}f", filters, "-f", "null", "-"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def presented_flashes(rendition: Path, playlist: str = layout.VIDEO_PLAYLIST) -> list[float]:
    """When an MSE player shows each white frame: ffmpeg finds which frames (in presentation
    order) are white; their times come from the fragments (tfdt + durations + signed
    composition offsets), since ffmpeg's own demuxer shifts signed offsets by its dts_shift."""
    joined, timed, ticks = _joined(rendition, playlist)
    log = _decoded(joined, "v", "signalstats,metadata=print:key=lavfi.signalstats.YAVG")
    brightness = [float(y) for y in re.findall(r"lavfi\.signalstats\.YAVG=([0-9.]+)", log)]
    order = sorted(s.presentation for s in timed)
    assert len(brightness) == len(order), (len(brightness), len(order))
    return [order[i] / ticks for i, y in enumerate(brightness) if y > 200]


def presented_clicks(rendition: Path, playlist: str = layout.AUDIO_PLAYLIST) -> list[float]:
    """When an MSE player plays each click: the decoded samples (priming included: MSE
    ignores the edit list that would hide it) counted from the first fragment's tfdt."""
    joined, timed, ticks = _joined(rendition, playlist)
    log = _decoded(joined, "a", f"asetpts=N/SR/TB,{'highpass=f=3000,' * 4}"
                                "silencedetect=n=-40dB:d=0.1")
    start = timed[0].decode / ticks
    end = (timed[-1].decode + timed[-1].duration) / ticks
    onsets = [start + float(t) for t in re.findall(r"silence_end: (-?[0-9.]+)", log)]
    return [t for t in onsets if t < end - 0.05]  # not the end of the stream's last silence
