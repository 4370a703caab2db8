"""Benchmark: uploads stream from disk (memory does not grow with media size) and run in
parallel through one sized connection pool.

Starts a moto server on a free loopback port, uploads one large file (multipart) and many small
segments, and reports throughput and the process's peak RSS growth. moto keeps objects in its
own process, so the numbers here are the reconciler's alone.

    python bench/upload_bench.py [--big-mib 256] [--segments 300] [--jobs 8]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--segments", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        from reconciler import layout
        from reconciler.store.s3 import S3Store

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bench")
        store = S3Store("bench", workers=args.jobs)
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "v_000.m4s"
            with big.open("wb") as fh:
                chunk = os.urandom(1 << 20)
                for _ in range(args.big_mib):
                    fh.write(chunk)
            seg = Path(tmp) / "a_000.m4s"
            seg.write_bytes(os.urandom(64 * 1024))
            base = peak_rss_mib()
            start = time.perf_counter()
            store.put_file("assets/curriculumsection/1/video/v_000.m4s", big, layout.SEGMENT_META)
            big_s = time.perf_counter() - start
            big_rss = peak_rss_mib() - base
            start = time.perf_counter()
            keys = [f"assets/curriculumsection/1/audio/en/a_{i:03d}.m4s"
                    for i in range(args.segments)]
            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(lambda k: store.put_file(k, seg, layout.SEGMENT_META), keys))
            small_s = time.perf_counter() - start
        print(f"one {args.big_mib} MiB file (multipart): {big_s:.1f} s, "
              f"{args.big_mib / big_s:.0f} MiB/s, peak RSS growth {big_rss:.0f} MiB")
        print(f"{args.segments} segments of 64 KiB with {args.jobs} workers: {small_s:.1f} s, "
              f"{args.segments / small_s:.0f} objects/s")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
