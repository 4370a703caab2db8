"""Benchmark: what observing and planning converged sections costs.

`section` (default): one converged section with a long lecture (default 900 segments per
rendition, i.e. one hour at 4 s, video + 3 languages) in a store; observe + plan, reporting the
store requests by kind, the wall time and the peak Python memory. The target (docs/design.md,
Development): O(1) requests per section (one LIST page per 1,000 objects, a few GET/HEAD),
whatever its length.

`catalogue`: many converged sections (default 1,001 of 8 segments per rendition, i.e. 30-s
media) on a moto server behind a counting proxy, their objects written directly with the keys
and metadata an apply gives them (packaging 1,001 sections through ffmpeg would take hours),
then one `reconcile --apply` with nothing to change, which reads every section in full and
records it in the state index. Measured, alternating per round: `reconcile --plan` of the whole
catalogue (CLI, a fresh process) against `aws s3 ls --recursive` of the same prefix (awscli in
its own virtualenv, as bench/package_bench.py makes it), both through the proxy; then the plan
again after a CopyObject metadata repair in `--changed` sections (those are read, the rest come
from the index). Prints times, ratios and request counts by kind.

    python bench/observe_bench.py [section] [--segments 900] [--store file:///tmp/bench-store]
    python bench/observe_bench.py catalogue [--sections 1001] [--segments 8] [--rounds 2]
        [--changed 10] [--cache /tmp/reconciler-bench]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import yaml

from reconciler import layout, samples
from reconciler.hls import MediaPlaylist, Segment, render_media
from reconciler.inputs.reader import InputReader
from reconciler.manifest import VIDEO_TRACK, Language, Section, Source
from reconciler.master import Facts, compose_master
from reconciler.mp4 import read_track
from reconciler.observe import observe
from reconciler.observed import STAMP_SETTINGS, STAMP_SOURCE, ObservedSection
from reconciler.packager import AUDIO_SETTINGS, VIDEO_SETTINGS, ffmpeg
from reconciler.planner import audio_source_id, make_plan, video_source_id
from reconciler.store import open_store


class CountingStore:
    """Wraps a store and counts requests by method (what S3 would bill and wait for)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.url = inner.url
        self.timestamp_resolution = inner.timestamp_resolution  # an attribute, not a request
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def build(store, sid: int, segments: int, tmp: Path, clip: Path) -> Section:
    """A converged section as an apply leaves it: inits and segments, then (a second later, so
    LastModified shows they came first) the playlists that seal them, then master."""
    langs = (Language("ko", "Korean", True, VIDEO_TRACK),
             Language("en", "English", False, Source("file", "clip.mp4", clip)),
             Language("ja", "Japanese", False, Source("file", "clip.mp4", clip)))
    section = Section(sid, Source("file", "clip.mp4", clip), langs, "bench.yaml")
    fake = ObservedSection(sid, {})
    fake.video_input = InputReader().identify(section.video)
    fake.audio_inputs = {"en": fake.video_input, "ja": fake.video_input}
    ref = video_source_id(fake)
    facts: dict[str | None, Facts] = {}
    playlists = []
    for lang in [None, *langs]:
        code = None if lang is None else lang.code
        directory = layout.rendition_dir(sid, code)
        tmpl = layout.VIDEO_SEGMENT_TEMPLATE if code is None else layout.AUDIO_SEGMENT_TEMPLATE
        names = [tmpl % i for i in range(segments)]
        init = (tmp / "init" / ("video" if code is None else "audio") / layout.INIT).read_bytes()
        store.put_bytes(directory + layout.INIT, init, layout.INIT_META)
        for name in names:
            store.put_bytes(directory + name, b"\0" * 2000, layout.SEGMENT_META)
        source_id = ref if code is None else audio_source_id(section, lang, fake, ref)
        settings = VIDEO_SETTINGS if code is None else AUDIO_SETTINGS
        playlist = MediaPlaylist(4, tuple(Segment(n, 4.0) for n in names))
        facts[code] = Facts(playlist, read_track(init, "video" if code is None else "audio"),
                            dict.fromkeys(names, 2000))
        playlists.append((directory + layout.playlist_name(code), render_media(playlist),
                          {STAMP_SOURCE: source_id, STAMP_SETTINGS: settings}))
    time.sleep(1.0)  # S3's LastModified has one-second resolution
    for key, text, stamp in playlists:
        store.put_bytes(key, text.encode(), layout.PLAYLIST_META.stamped(stamp))
    master = compose_master(section, facts.pop(None), facts)
    store.put_bytes(layout.master_key(sid), master.encode(), layout.PLAYLIST_META)
    return section


def section_bench(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        clip = make_inits(tmp)
        store = open_store(args.store or f"file://{tmp / 'store'}")
        section = build(store, 1, args.segments, tmp, clip)
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


def make_inits(tmp: Path) -> Path:
    """A 2-s clip and the init.mp4 of its video and audio renditions (real codec strings)."""
    clip = samples.make_video(tmp / "clip.mp4", seconds=2, size="320x180")
    ffmpeg.package_video(clip, tmp / "init" / "video")
    ffmpeg.package_audio(clip, tmp / "init" / "audio", duration=2, from_video=True)
    return clip


def timed(args: list[str], env: dict[str, str], codes: tuple[int, ...] = (0,)
          ) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a command (no shell), which must exit with one of
    `codes`."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in codes:
        raise RuntimeError(f"{args[0]} exited {status}: {err[-2000:]!r}")
    return elapsed, usage.ru_maxrss / 1024


def catalogue_bench(args: argparse.Namespace) -> None:
    from faultproxy import FaultProxy
    from package_bench import ENV, awscli, kind, start_moto

    args.cache.mkdir(parents=True, exist_ok=True)
    aws = awscli(args.cache)
    moto, url = start_moto(args.cache)
    tmp = Path(tempfile.mkdtemp(prefix="catalogue-", dir=args.cache))
    saved = dict(os.environ)
    try:
        with FaultProxy(url) as proxy:
            # Built straight on moto (not counted); measured through the counting proxy.
            os.environ.update(ENV | {"AWS_ENDPOINT_URL": url,
                                     "RECONCILER_CACHE_DIR": str(tmp / "cache"),
                                     "AWS_CONFIG_FILE": os.devnull,
                                     "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
            os.environ.pop("CLOUDFRONT_DISTRIBUTION_ID", None)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
            clip = make_inits(tmp)
            repo = tmp / "repo"
            (repo / "media").mkdir(parents=True)
            (repo / "manifests").mkdir()
            (repo / ".git").mkdir()
            shutil.copyfile(clip, repo / "media" / "lecture.mp4")
            shutil.copyfile(clip, repo / "media" / "voice.m4a")
            store = open_store(f"s3://{bucket}", workers=16)
            ids = list(range(1, args.sections + 1))
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda sid: build(store, sid, args.segments, tmp, clip), ids))
            for sid in ids:
                (repo / "manifests" / f"section-{sid}.yaml").write_text(yaml.safe_dump({
                    "sectionId": sid, "video": "../media/lecture.mp4", "languages": [
                        {"code": "ko", "audio": "source", "default": True},
                        {"code": "en", "audio": "../media/voice.m4a"},
                        {"code": "ja", "audio": "../media/voice.m4a"}]}, sort_keys=False))
            objects = len(ids) * (4 * (args.segments + 2) + 1)
            print(f"built {len(ids)} sections, {objects} objects, in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url}
            cli = [sys.executable, "-m", "reconciler.cli"]
            target = ["--store", f"s3://{bucket}", str(repo / "manifests")]
            prefix = f"s3://{bucket}/{layout.assets_prefix()}"
            steps: dict[str, list[tuple[float, collections.Counter]]] = {}

            def step(name: str, argv: list[str], codes: tuple[int, ...] = (0,)) -> None:
                before = len(proxy.seen)
                seconds, rss = timed(argv, env, codes)
                kinds = collections.Counter(map(kind, proxy.seen[before:]))
                steps.setdefault(name, []).append((seconds, kinds))
                print(f"{name}: {seconds:.1f} s, peak RSS {rss:.0f} MiB, "
                      f"{sum(kinds.values())} requests {dict(sorted(kinds.items()))}, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)

            step("apply, nothing to change (reads all, writes the index)",
                 [*cli, "--apply", *target])
            index = store.head(layout.STATE_INDEX_KEY)
            print(f"state index: {index.size / 1024:.0f} KiB gzipped" if index else
                  "state index: not written", flush=True)
            for r in range(args.rounds):
                pair = [("aws s3 ls --recursive", [str(aws), "s3", "ls", "--recursive", prefix]),
                        ("reconcile --plan", [*cli, "--plan", *target])]
                for name, argv in pair[::-1] if r % 2 else pair:
                    step(name, argv)
            for sid in ids[:args.changed]:  # a metadata repair: same ETag, LastModified moves
                store.set_meta(layout.audio_dir(sid, "en") + "a_000.m4s",
                               layout.ObjectMeta("binary/octet-stream", "no-cache"))
            step(f"reconcile --plan, {args.changed} sections changed",
                 [*cli, "--plan", *target], codes=(2,))

            def median(name: str) -> float:
                return statistics.median(s for s, _ in steps[name])

            def requests(name: str) -> int:
                return sum(steps[name][-1][1].values())

            ours, peer = median("reconcile --plan"), median("aws s3 ls --recursive")
            changed = f"reconcile --plan, {args.changed} sections changed"
            print(f"\n{len(ids)} converged sections, {objects} objects ({args.segments} "
                  f"segments x 4 renditions + master each), median of {args.rounds} round(s), "
                  f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
            print("| work | reconciler | aws s3 ls --recursive | ratio (goal) |")
            print("|---|---|---|---|")
            print(f"| converged plan | {ours:.1f} s, {requests('reconcile --plan')} requests "
                  f"| {peer:.1f} s, {requests('aws s3 ls --recursive')} requests "
                  f"| **{ours / peer:.2f}×** (≤ 1.5×) |")
            print(f"| plan, {args.changed} sections repaired by CopyObject | "
                  f"{median(changed):.1f} s, {requests(changed)} requests | | "
                  f"{median(changed) / peer:.2f}× |")
            first = "apply, nothing to change (reads all, writes the index)"
            print(f"| first apply after the upgrade (no index yet) | {median(first):.1f} s, "
                  f"{requests(first)} requests | | {median(first) / peer:.2f}× |")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        moto.terminate()
        try:
            moto.wait(30)  # a moto holding 80,000 objects takes a while to stop
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", choices=("section", "catalogue"), default="section")
    parser.add_argument("--segments", type=int, default=None,
                        help="per rendition (default 900 for section, 8 for catalogue)")
    parser.add_argument("--store", default=None, help="section: default a temporary directory")
    parser.add_argument("--sections", type=int, default=1001)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reconciler-bench"))
    args = parser.parse_args()
    if args.which == "section":
        args.segments = args.segments or 900
        section_bench(args)
    else:
        args.segments = args.segments or 8
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        catalogue_bench(args)


if __name__ == "__main__":
    main()
