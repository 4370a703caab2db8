"""Benchmark: the reconciler against its peers, side by side in one run on a moto server.

Peers, run interleaved with the reconciler (order alternating per round) so the machine's load
hits both alike; each figure is the median over the rounds:

* `section`: a new section (video + ko from the video + en + ja), uploaded with the metadata,
  master, one invalidation. Peer: the customer's sequential script, i.e. ffmpeg per rendition
  (the spec's commands) then `aws s3 cp --recursive` per metadata class, master, and
  `aws cloudfront create-invalidation`, with awscli from PyPI in its own virtualenv (it pins
  botocore; the project's environment is never touched).
* `language`: add `es` (a supplied mp3) to that converged section. Peer: the bare
  `ffmpeg -i es.mp3 -c:a aac -b:a 128k -ar 48000 -ac 2 -f hls …` to local disk.

Every S3/CloudFront request of both sides goes through a counting proxy in front of moto
(tests/faultproxy.py with no faults), so request counts are exact. CPU seconds (user + system)
and peak RSS are those of the command's whole process tree, ffmpeg included (wait4): on a
shared machine wall-time ratios move with the load average (printed per step), CPU ratios do
not. The moto server and the proxy run on the same machine and are charged to neither side.
Media is generated once into the cache.

    python bench/package_bench.py [section|language|all] [--minutes 5] [--rounds 3]
        [--cache /tmp/reconciler-bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from faultproxy import FaultProxy  # noqa: E402

from reconciler import layout, samples  # noqa: E402
from reconciler.packager.ffmpeg import FFMPEG, MediaError  # noqa: E402

ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
LANGS = ("en", "ja", "es")
HLS = ["-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
       "-hls_fmp4_init_filename", "init.mp4"]


@dataclass
class Step:
    """One timed command: wall seconds, CPU seconds (user + system of its process tree),
    requests through the proxy, peak RSS (MiB)."""

    seconds: float
    cpu: float = 0.0
    requests: int = 0
    rss_mib: float = 0.0
    video_requests: int = 0
    written: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Table:
    rows: dict[str, list[Step]] = field(default_factory=dict)

    def add(self, name: str, step: Step) -> None:
        self.rows.setdefault(name, []).append(step)

    def median(self, name: str, attr: str = "seconds") -> float:
        return statistics.median(getattr(s, attr) for s in self.rows[name])


def run(args: list[str], env: dict[str, str], cwd: Path | None = None
        ) -> tuple[float, float, float]:
    """Run a command (no shell); wall seconds, CPU seconds and peak RSS (MiB) of its process
    tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}:\n{out.decode()[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def kind(seen) -> str:
    """A request's kind for the breakdown: method and what it touched."""
    what = seen.key.rsplit("/", 1)[-1] if seen.key else "bucket"
    if what.endswith(".m4s"):
        what = "segment"
    elif seen.key.startswith("locks/"):
        what = "lock"
    elif "list-type" in seen.query:
        what = "LIST"
    elif "invalidation" in seen.path:
        what = "invalidation"
    return f"{seen.method} {what}"


def speech(dest: Path, seconds: float, seed: int) -> Path:
    """A speech-like stand-in for a dub: pink noise with a syllable-rate envelope, as mp3."""
    if dest.exists():
        return dest
    tmp = dest.with_suffix(".part.mp3")
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"anoisesrc=color=pink:sample_rate=44100:duration={seconds}:amplitude=0.2"
                    f":seed={seed}",
                    "-af", f"volume='0.2+0.8*abs(sin(2*PI*{1.5 + seed / 10}*t))':eval=frame",
                    "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", str(tmp)], check=True)
    tmp.rename(dest)
    return dest


def make_media(root: Path, minutes: float) -> Path:
    """The lecture (640x360 H.264 with its own track) and en/ja/es dubs, made once."""
    media = root / f"media-{minutes:g}min"
    media.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    video = media / "lecture.mp4"
    if not video.exists():
        print(f"generating {minutes:g}-minute media in {media} ...", flush=True)
        samples.make_video(media / "part.mp4", seconds=seconds, size="640x360", tone_hz=220)
        (media / "part.mp4").rename(video)
    for i, code in enumerate(LANGS):
        speech(media / f"{code}.mp3", seconds, i + 1)
    return media


def awscli(cache: Path) -> Path:
    """awscli from PyPI in its own virtualenv under the cache (made once)."""
    venv = cache / "awscli-venv"
    aws = venv / "bin" / "aws"
    if not aws.exists():
        print("installing awscli into its own virtualenv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return aws


def start_moto(cache: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (cache / "moto.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("moto server did not start")


def distribution() -> str:
    cf = boto3.client("cloudfront", region_name="us-east-1")
    resp = cf.create_distribution(DistributionConfig={
        "CallerReference": uuid.uuid4().hex, "Comment": "bench", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{
            "Id": "s3", "DomainName": "bench.s3.amazonaws.com",
            "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {
            "TargetOriginId": "s3", "ViewerProtocolPolicy": "redirect-to-https", "MinTTL": 0,
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })
    return resp["Distribution"]["Id"]


class Bench:
    def __init__(self, cache: Path, media: Path, aws: Path, proxy: FaultProxy, bucket: str,
                 dist: str) -> None:
        self.cache, self.media, self.aws, self.proxy = cache, media, aws, proxy
        self.bucket = bucket
        self.env = {**os.environ, **ENV, "AWS_ENDPOINT_URL": proxy.url,
                    "AWS_BUCKET_NAME": bucket, "CLOUDFRONT_DISTRIBUTION_ID": dist,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        self.dist = dist
        self.run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache))  # this run's own
        self.repo = self.run_dir / "repo"
        (self.repo / ".git").mkdir(parents=True)
        (self.repo / "manifests").mkdir()
        (self.repo / "media").mkdir()
        for item in media.iterdir():  # hard links: a symlink would leave the repository
            os.link(item, self.repo / "media" / item.name)

    def _counted(self, fn) -> Step:
        before = len(self.proxy.seen)
        seconds, cpu, rss = fn()
        seen = self.proxy.seen[before:]
        video = sum(1 for s in seen if "/video/" in s.path
                    and (s.method == "PUT" or s.method == "GET" and s.path.endswith(".m4s")))
        written = sum(1 for s in seen if s.method == "PUT" and "/assets/" in s.path)
        return Step(seconds, cpu, len(seen), rss, video, written,
                    dict(Counter(map(kind, seen))))

    # -- the reconciler ----------------------------------------------------------------------
    def manifest(self, sid: int, codes: tuple[str, ...]) -> Path:
        langs = [{"code": "ko", "audio": "source", "default": True}]
        langs += [{"code": c, "audio": f"../media/{c}.mp3"} for c in codes]
        path = self.repo / "manifests" / f"section-{sid}.yaml"
        path.write_text(yaml.safe_dump({"sectionId": sid, "video": "../media/lecture.mp4",
                                        "languages": langs}, sort_keys=False))
        return path

    def reconcile(self, sid: int, codes: tuple[str, ...]) -> Step:
        path = self.manifest(sid, codes)
        return self._counted(lambda: run(
            [sys.executable, "-m", "reconciler.cli", "--apply", "--section", str(sid),
             str(path)], self.env))

    # -- the peers ---------------------------------------------------------------------------
    def bare_encode(self, code: str) -> Step:
        out = self.run_dir / "bare" / code
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return self._counted(lambda: run(
            [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(self.media / f"{code}.mp3"),
             "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", *HLS,
             "-hls_segment_filename", str(out / "a_%03d.m4s"), str(out / "audio.m3u8")],
            self.env))

    def customer_script(self, sid: int) -> Step:
        """ffmpeg per rendition, then aws s3 cp --recursive per metadata class, master last,
        one invalidation: sequential, as the customer ran it (with the segment paths fixed)."""
        work = self.run_dir / "script" / str(sid)
        shutil.rmtree(work, ignore_errors=True)
        video = self.media / "lecture.mp4"
        jobs = [(video, ["-map", "0:v:0", "-c:v", "copy"], work / "video", "v", "video")]
        jobs.append((video, ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
                             "-ac", "2"], work / "audio" / "ko", "a", "audio"))
        jobs += [(self.media / f"{c}.mp3", ["-c:a", "aac", "-b:a", "128k", "-ar", "48000",
                                            "-ac", "2"], work / "audio" / c, "a", "audio")
                 for c in ("en", "ja")]
        dest = f"s3://{self.bucket}/{layout.section_prefix(sid)}"
        cp = [str(self.aws), "s3", "cp", "--recursive", "--only-show-errors", str(work), dest,
              "--sse", "AES256", "--exclude", "*"]
        master = "#EXTM3U\n" + "".join(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="{c}",LANGUAGE="{c}",'
            f'AUTOSELECT=YES,DEFAULT={"YES" if c == "ko" else "NO"},'
            f'URI="audio/{c}/audio.m3u8"\n' for c in ("ko", "en", "ja")
        ) + ('#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS="avc1.64001e,mp4a.40.2",'
             'RESOLUTION=640x360,AUDIO="aud"\nvideo/video.m3u8\n')

        def script() -> tuple[float, float, float]:
            total, cpu, peak = 0.0, 0.0, 0.0
            for src, codec, out, letter, name in jobs:
                out.mkdir(parents=True)
                t, c, rss = run([FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(src), *codec,
                              *HLS, "-hls_segment_filename", str(out / f"{letter}_%03d.m4s"),
                              str(out / f"{name}.m3u8")], self.env)
                total, cpu, peak = total + t, cpu + c, max(peak, rss)
            (work / "master.m3u8").write_text(master)
            for include, ctype, cache in (
                    ("*.m4s", "video/iso.segment", layout.IMMUTABLE_CACHE),
                    ("*/init.mp4", "video/mp4", layout.IMMUTABLE_CACHE),
                    ("*/*.m3u8", "application/vnd.apple.mpegurl", layout.PLAYLIST_CACHE)):
                t, c, rss = run([*cp, "--include", include, "--exclude", "master.m3u8",
                              "--content-type", ctype, "--cache-control", cache], self.env)
                total, cpu, peak = total + t, cpu + c, max(peak, rss)
            for args in (
                    [str(self.aws), "s3", "cp", "--only-show-errors", str(work / "master.m3u8"),
                     dest + "master.m3u8", "--sse", "AES256", "--content-type",
                     "application/vnd.apple.mpegurl", "--cache-control", layout.PLAYLIST_CACHE],
                    [str(self.aws), "cloudfront", "create-invalidation", "--distribution-id",
                     self.dist, "--paths", "/" + layout.master_key(sid)]):
                t, c, rss = run(args, self.env)
                total, cpu, peak = total + t, cpu + c, max(peak, rss)
            return total, cpu, peak

        return self._counted(script)


def report(table: Table, rounds: int, minutes: float, which: str) -> None:
    print(f"\n{minutes:g}-minute media, median of {rounds} round(s), {os.cpu_count()} cores "
          f"({os.uname().sysname} {os.uname().machine})\n")
    print("| work | reconciler | peer | wall ratio (goal) | CPU ratio |")
    print("|---|---|---|---|---|")

    def row(work: str, ours: str, peer: str, goal: float, label: str) -> None:
        o, p = table.median(ours), table.median(peer)
        oc, pc = table.median(ours, "cpu"), table.median(peer, "cpu")
        reqs, rss = table.median(ours, "requests"), table.median(ours, "rss_mib")
        preqs = table.median(peer, "requests")
        print(f"| {work} | {o:.1f} s ({oc:.1f} s CPU), {reqs:.0f} requests, peak RSS "
              f"{rss:.0f} MiB | {label}: {p:.1f} s ({pc:.1f} s CPU), {preqs:.0f} requests "
              f"| **{o / p:.2f}×** (≤ {goal}×) | {oc / pc:.2f}× |")

    if which in ("section", "all"):
        row("new section: video + ko + en + ja, uploaded, master, invalidation",
            "reconciler section", "customer script", 0.6, "customer's sequential script")
    if which in ("language", "all"):
        row("add `es` to that converged section", "reconciler add es", "bare encode", 1.25,
            "bare ffmpeg AAC encode to local disk")
        written = table.median("reconciler add es", "written")
        reqs = table.median("reconciler add es", "requests")
        video = max(s.video_requests for s in table.rows["reconciler add es"])
        last = table.rows["reconciler add es"][-1].kinds
        print(f"\nadding `es`: {reqs:.0f} requests for {written:.0f} objects written "
              f"(goal ≤ written + 15 = {written + 15:.0f}); video segment GETs and video PUTs: "
              f"{video}; last round: {dict(sorted(last.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", choices=("section", "language", "all"),
                        default="all")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reconciler-bench"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        media = make_media(args.cache, args.minutes)
    except (MediaError, subprocess.CalledProcessError) as err:
        sys.exit(f"could not generate media: {err}")
    aws = awscli(args.cache)
    moto, url = start_moto(args.cache)
    saved = dict(os.environ)
    try:
        with FaultProxy(url) as proxy:
            os.environ.update(ENV | {"AWS_ENDPOINT_URL": proxy.url})
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
            bench = Bench(args.cache, media, aws, proxy, bucket, distribution())
            table = Table()
            for r in range(args.rounds):
                sid = 100 + r
                steps = []
                if args.which in ("section", "all"):
                    steps += [("customer script", lambda s=sid: bench.customer_script(s + 500)),
                              ("reconciler section",
                               lambda s=sid: bench.reconcile(s, ("en", "ja")))]
                if args.which in ("language", "all"):
                    if args.which == "language":  # the converged section to add to
                        bench.reconcile(sid, ("en", "ja"))
                    steps += [("bare encode", lambda: bench.bare_encode("es")),
                              ("reconciler add es",
                               lambda s=sid: bench.reconcile(s, ("en", "ja", "es")))]
                if r % 2:  # alternate who goes first within each pair
                    steps = [p for i in range(0, len(steps), 2) for p in steps[i:i + 2][::-1]]
                steps.sort(key=lambda s: "section" not in s[0] and "script" not in s[0])
                for name, fn in steps:
                    step = fn()
                    table.add(name, step)
                    print(f"round {r + 1}: {name}: {step.seconds:.1f} s, {step.cpu:.1f} s CPU, "
                          f"{step.requests} requests, {step.rss_mib:.0f} MiB, load "
                          f"{os.getloadavg()[0]:.1f}", flush=True)
            report(table, args.rounds, args.minutes, args.which)
            shutil.rmtree(bench.run_dir, ignore_errors=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()
