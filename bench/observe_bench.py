"""Benchmark: what observing and planning a large converged section costs.

Builds one converged section with a long lecture (default 900 segments per rendition, i.e. one
hour at 4 s, video + 3 languages) in a store, then runs observe + plan and reports the number of
store requests by kind, the wall time, and the peak Python memory. The target (README): O(1)
requests per section (one LIST page per 1,000 objects, a few GET/HEAD), independent of the
number of segments.

    python bench/observe_bench.py [--segments 900] [--store file:///tmp/bench-store]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

from reconciler import layout, media, samples
from reconciler.hls import MediaPlaylist, Segment, render_media
from reconciler.inputs import InputReader
from reconciler.manifest import VIDEO_TRACK, Language, Section, Source
from reconciler.observe import STAMP_SETTINGS, STAMP_SOURCE, ObservedSection, observe
from reconciler.packaging import AUDIO_SETTINGS, VIDEO_SETTINGS
from reconciler.plan import (
    audio_source_id,
    compose_master,
    make_plan,
    observed_facts,
    video_source_id,
)
from reconciler.store import open_store


class CountingStore:
    """Wraps a store and counts requests by method (what S3 would bill and wait for)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def build(store, sid: int, segments: int, tmp: Path) -> Section:
    """A converged section: renditions sealed by their playlists, then master."""
    clip = tmp / "clip.mp4"
    langs = (Language("ko", "Korean", True, VIDEO_TRACK),
             Language("en", "English", False, Source("file", "clip.mp4", clip)),
             Language("ja", "Japanese", False, Source("file", "clip.mp4", clip)))
    section = Section(sid, Source("file", "clip.mp4", clip), langs, "bench.yaml")
    fake = ObservedSection(sid, {})
    fake.video_input = InputReader().identify(section.video)
    fake.audio_inputs = {"en": fake.video_input, "ja": fake.video_input}
    ref = video_source_id(fake)
    init_dir = tmp / "init"
    for lang in [None, *langs]:
        code = None if lang is None else lang.code
        directory = layout.rendition_dir(sid, code)
        tmpl = layout.VIDEO_SEGMENT_TEMPLATE if code is None else layout.AUDIO_SEGMENT_TEMPLATE
        names = [tmpl % i for i in range(segments)]
        init = (init_dir / ("video" if code is None else "audio") / layout.INIT).read_bytes()
        store.put_bytes(directory + layout.INIT, init, layout.INIT_META)
        for name in names:
            store.put_bytes(directory + name, b"\0" * 2000, layout.SEGMENT_META)
        source_id = ref if code is None else audio_source_id(section, lang, fake, ref)
        settings = VIDEO_SETTINGS if code is None else AUDIO_SETTINGS
        time.sleep(0.01)  # the playlist seals what was written before it
        playlist = MediaPlaylist(4, tuple(Segment(n, 4.0) for n in names))
        stamp = {STAMP_SOURCE: source_id, STAMP_SETTINGS: settings}
        store.put_bytes(directory + layout.playlist_name(code), render_media(playlist).encode(),
                        layout.PLAYLIST_META, stamp)
    obs = observe(store, [section], inputs=InputReader())[sid]
    audio = {c: observed_facts(obs, r) for c, r in obs.audio.items()}
    master = compose_master(section, observed_facts(obs, obs.video), audio)
    store.put_bytes(layout.master_key(sid), master.encode(), layout.PLAYLIST_META)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=900)
    parser.add_argument("--store", default=None, help="default: a temporary local directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        clip = samples.make_video(tmp / "clip.mp4", seconds=2, size="320x180")
        media.package_video(clip, tmp / "init" / "video")
        media.package_audio(clip, tmp / "init" / "audio", duration=2, from_video=True)
        store = open_store(args.store or f"file://{tmp / 'store'}")
        section = build(store, 1, args.segments, tmp)
        counting = CountingStore(store)
        tracemalloc.start()
        start = time.perf_counter()
        plan = make_plan([section], observe(counting, [section], inputs=InputReader()))
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        objects = 4 * (args.segments + 2) + 1
        print(f"section with {objects} objects ({args.segments} segments x 4 renditions)")
        print(f"store requests: {dict(counting.calls)} (total {sum(counting.calls.values())})")
        print(f"observe+plan: {elapsed * 1000:.0f} ms, peak Python memory {peak / 2**20:.1f} MiB")
        print(f"plan has changes: {plan.has_changes}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
