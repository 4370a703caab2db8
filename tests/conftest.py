"""Shared fixtures: one moto server (real HTTP, real boto3 signing) per test run, generated
media, and throw-away repositories of manifests."""

from __future__ import annotations

import collections
import fcntl
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx
import pytest

from reconciler import samples

# Under `--dist loadfile` (scripts/test.sh) a file is one worker's unit, and xdist hands the
# units out in the order the workers collected them. Longest files go first, so the last to start
# are short ones and no worker is left alone with a long file while the others idle (xdist's own
# reorder, by number of tests, started the 5-test install file, about a minute, last; it fixed
# the files' order as this does, while the tests inside each file stay in random order). A file's
# length is the sum of its tests' seconds in the last run that ran them, kept in pytest's cache;
# a fresh clone (CI) has no cache and takes each file's seconds from FILE_SECONDS, a committed
# copy of a run's (scripts/file-seconds.py writes it; a stale one only orders less well).
TEST_SECONDS = "reconciler/test-seconds"
FILE_SECONDS = Path(__file__).with_name("file-seconds.json")
UNTIMED_SECONDS = 1.0  # a test never run here counts as about the suite's mean
_seconds_this_run: collections.Counter[str] = collections.Counter()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers, files longest first; the sort is stable, so pytest-randomly's order
    (it shuffles before any other implementation of this hook runs) stays within each file
    and among files of equal length."""
    cache = getattr(config, "cache", None)
    if cache is None or not hasattr(config, "workerinput"):
        return
    recorded = cache.get(TEST_SECONDS, {})
    per_file: collections.Counter[Path] = collections.Counter()
    for item in items:
        per_file[item.path] += recorded.get(item.nodeid, UNTIMED_SECONDS)
    if not recorded:
        committed = json.loads(FILE_SECONDS.read_text())
        for path in per_file:
            per_file[path] = committed.get(path.name, per_file[path])
    items.sort(key=lambda item: -per_file[item.path])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's seconds (setup, call and teardown), on the process that reports the run."""
    _seconds_this_run[report.nodeid] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep this run's seconds per test for the next run's order (the controller writes them
    for all workers; a run of a few tests updates only theirs)."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _seconds_this_run:
        return
    cache.set(TEST_SECONDS, cache.get(TEST_SECONDS, {}) | {
        nodeid: round(seconds, 2) for nodeid, seconds in _seconds_this_run.items()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def input_hash_cache(tmp_path_factory):
    """The input-hash cache of every run the tests start, in-process or not, in this test
    process's temporary folder: the suite's thousands of throw-away inputs stay out of the
    user's ~/.cache/reconciler (its file is read and written by every run)."""
    where = tmp_path_factory.getbasetemp() / "input-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECONCILER_CACHE_DIR", str(where))
        yield where


@pytest.fixture(scope="session")
def moto_server():
    """moto in server mode on a free loopback port; boto3 finds it through AWS_ENDPOINT_URL."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("moto_server.py")), "-H", "127.0.0.1",
         "-p", str(port)],
        stdout=log, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=1) as http:  # one client: each new one builds a TLS context
        while True:
            try:
                if http.get(f"{url}/moto-api/").status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV | {"AWS_ENDPOINT_URL": url})
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


ENV = {
    "AWS_ACCESS_KEY_ID": "AKIATESTMARKERKEY123",
    "AWS_SECRET_ACCESS_KEY": "test-secret-marker-value",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3(moto_server):
    """The tests' own S3 client, at whatever AWS_ENDPOINT_URL names now (moto, or a test's
    fault proxy)."""
    return _s3_at(os.environ["AWS_ENDPOINT_URL"])


@functools.cache
def _s3_at(endpoint: str):
    """One client per endpoint for the test process (each costs ~20 ms of CPU to make)."""
    return boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture
def bucket(s3, monkeypatch) -> str:
    """A fresh, empty bucket per test (so tests never see each other's objects)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    monkeypatch.setenv("AWS_BUCKET_NAME", name)
    monkeypatch.delenv("CLOUDFRONT_DISTRIBUTION_ID", raising=False)
    return name


@pytest.fixture
def distribution(moto_server, monkeypatch) -> str:
    """A CloudFront distribution in moto; its id is exported as CLOUDFRONT_DISTRIBUTION_ID."""
    cf = boto3.client("cloudfront", region_name="us-east-1")
    ref = uuid.uuid4().hex
    resp = cf.create_distribution(DistributionConfig={
        "CallerReference": ref,
        "Comment": "test",
        "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{
            "Id": "s3", "DomainName": "bucket.s3.amazonaws.com",
            "S3OriginConfig": {"OriginAccessIdentity": ""},
        }]},
        "DefaultCacheBehavior": {
            "TargetOriginId": "s3", "ViewerProtocolPolicy": "redirect-to-https",
            "MinTTL": 0,
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            "TrustedSigners": {"Enabled": False, "Quantity": 0},
        },
    })
    dist_id = resp["Distribution"]["Id"]
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", dist_id)
    return dist_id


def shared_folder(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder made once per test run and shared by every xdist worker (they all start by
    needing it): the first to ask makes it under a file lock, the others wait and reuse it.
    Tests only read it (they copy it to change it)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's temporary folder, above each worker's own
    folder = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died half-way
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """Small real media, made once per run (shared_folder): a 5 s H.264 lecture with a 440 Hz
    track, and dubs."""
    return shared_folder(tmp_path_factory, "media", _make_media)


def _make_media(root: Path) -> None:
    samples.make_video(root / "lecture.mp4", seconds=5, size="320x180", tone_hz=440)
    samples.make_video(root / "lecture-b.mp4", seconds=3, size="320x180", tone_hz=660)
    samples.make_video(root / "silent.mp4", seconds=5, size="320x180", tone_hz=None)
    samples.make_tone(root / "en.mp3", hz=880, seconds=5)
    samples.make_tone(root / "ja.m4a", hz=1320, seconds=4.5)
    samples.make_tone(root / "zh.mp3", hz=990, seconds=5)
    samples.make_tone(root / "long.mp3", hz=500, seconds=8)
    data = (root / "lecture.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Real-world input shapes (tests/corpus.py: rotation, 10-bit, 4:2:2, 5.1, VFR, dubs that
    do not fit ...), each generated on first use and kept for the test run."""
    from corpus import Corpus

    return Corpus(tmp_path_factory.mktemp("corpus"))


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright, launched once per test process (a launch costs
    ~2 s) and shared by the player tests; each test opens its own page (a fresh context), so
    none sees another's state."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def eleven(monkeypatch):
    """The fake ElevenLabs server, with the client's environment pointing at it. Tests tune
    its knobs (steps_to_dub, fail_languages, audio_format …) directly."""
    from fake_elevenlabs import FakeElevenLabs

    fake = FakeElevenLabs(steps_to_dub=3, tone_hz_by_lang={"en": 880, "ja": 1320}).start()
    monkeypatch.setenv("ELEVENLABS_API_KEY", fake.api_key)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake.base_url)
    monkeypatch.setenv("ELEVENLABS_POLL_INTERVAL", "0.05")
    yield fake
    fake.stop()
    assert fake.violations == [], "requests ElevenLabs would refuse (its published contract)"


class Repo:
    """A throw-away git-like work tree with manifests/ and media/."""

    def __init__(self, root: Path, media: Path) -> None:
        self.root = root
        (root / ".git").mkdir(parents=True)
        self.manifests = root / "manifests"
        self.manifests.mkdir()
        shutil.copytree(media, root / "media")

    def write(self, section_id: int, languages: list[dict], video: str = "../media/lecture.mp4",
              **extra) -> Path:
        import yaml

        doc = {"sectionId": section_id, "video": video, **extra, "languages": languages}
        path = self.manifests / f"section-{section_id}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path


@pytest.fixture
def repo(tmp_path, media) -> Repo:
    return Repo(tmp_path / "repo", media)


def master_languages(s3, bucket: str, sid: int = 11) -> list[str]:
    """LANGUAGE of each audio rendition the section's master lists ([] when there is none)."""
    import re

    try:
        body = s3.get_object(Bucket=bucket, Key=f"assets/curriculumsection/{sid}/master.m3u8")
    except s3.exceptions.NoSuchKey:
        return []
    return re.findall(r'LANGUAGE="([^"]+)"', body["Body"].read().decode())


def expire_dead_lease(s3, bucket: str, pid: int) -> None:
    """Move the lease a killed `reconcile` process left (if it took one) to just past its
    expiry: what waiting out its --lock-ttl would do, without the wait. The takeover that
    follows is the real one (read, then If-Match on the expired lease); test_observe_lock
    proves on a clock it controls that an unexpired lease is not taken over."""
    import json

    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="locks/")
    for key in [o["Key"] for page in pages for o in page.get("Contents", [])]:
        lease = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert lease["owner"]["pid"] == str(pid), f"not the killed run's lease: {lease}"
        lease["expires"] = time.time() - 1
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(lease).encode())


KO_EN = [
    {"code": "ko", "audio": "source", "default": True},
    {"code": "en", "audio": "../media/en.mp3"},
]


class CountingStore:
    """A store that counts the requests made through it, by method (observe's budget)."""

    def __init__(self, inner) -> None:
        self.inner, self.url = inner, inner.url
        self.timestamp_resolution = inner.timestamp_resolution  # an attribute, not a request
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name):
        def counted(*args, **kwargs):
            self.calls[name] += 1
            return getattr(self.inner, name)(*args, **kwargs)
        return counted
