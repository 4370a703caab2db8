"""Crash anywhere: `kill -9` a real `reconcile --apply` (its whole process group) at seeded random
moments of a three-language run (one language dubbed through the fake ElevenLabs server), each
against a fresh bucket. After every kill master never names a missing or mis-labelled object;
the next apply takes the dead run's lease over once it expires and converges without paying for
the dub again or rebuilding renditions that were already complete; `--plan` then exits 0.

The dead run's lease is expired by the test (conftest.expire_dead_lease: its `expires` moved to
the past, as its TTL passing would) rather than waited for; the takeover is the same.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from cli_helpers import reconcile
from conftest import Repo, expire_dead_lease
from fake_elevenlabs import FakeElevenLabs
from faultproxy import ASSETS, FaultProxy, Rule, reachable_from_master

from reconciler import layout

SEED = 20240917
KILLS = 20
LOCK_TTL = "5"  # the CLI's minimum: a killed run's lease blocks the next apply at most 5 s
LANGS = [
    {"code": "ko", "audio": "source", "default": True},
    {"code": "en"},  # dubbed
    {"code": "ja", "name": "Japanese", "audio": "../media/ja.m4a"},
]
ROOT = f"{ASSETS}/11/"


class Run:
    """What the kills share: manifests, the fake ElevenLabs, the environment of the children."""

    def __init__(self, repo: Repo, fake: FakeElevenLabs, s3) -> None:
        self.repo, self.fake, self.s3 = repo, fake, s3
        self.env = dict(os.environ)
        self.duration = 0.0

    def bucket(self) -> str:
        name = f"crash-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def start(self, bucket: str, env: dict[str, str] | None = None,
              output=subprocess.DEVNULL) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "--apply", "--lock-ttl", LOCK_TTL,
             "--store", f"s3://{bucket}", str(self.repo.manifests)],
            env=env or self.env, stdout=output, stderr=output, start_new_session=True,
        )

    def listing(self, bucket: str, prefix: str = "") -> dict[str, dict]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"]: o for p in pages for o in p.get("Contents", [])}


@pytest.fixture(scope="module")
def run(moto_server, media, tmp_path_factory):
    import boto3

    fake = FakeElevenLabs(steps_to_dub=3, tone_hz_by_lang={"en": 880}).start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELEVENLABS_API_KEY", fake.api_key)
        mp.setenv("ELEVENLABS_BASE_URL", fake.base_url)
        mp.setenv("ELEVENLABS_POLL_INTERVAL", "0.05")
        mp.delenv("CLOUDFRONT_DISTRIBUTION_ID", raising=False)
        mp.delenv("AWS_BUCKET_NAME", raising=False)
        repo = Repo(tmp_path_factory.mktemp("crash") / "repo", media)
        repo.write(11, LANGS)
        shared = Run(repo, fake, boto3.client("s3", region_name="us-east-1",
                                              endpoint_url=moto_server))
        # One whole run first: it must converge, and its length spreads the kills.
        bucket = shared.bucket()
        started = time.monotonic()
        proc = shared.start(bucket, output=subprocess.PIPE)
        out, err = proc.communicate(timeout=120)
        shared.duration = time.monotonic() - started
        assert proc.returncode == 0, out.decode() + err.decode()
        assert len(fake.creates) == 1
        yield shared
    fake.stop()


def kill_moments() -> list[float]:
    """KILLS fractions of the run, stratified so they cover it from start to (just past) end."""
    rng = random.Random(SEED)
    return [(i + rng.random()) / KILLS * 1.05 for i in range(KILLS)]


def complete_renditions(run: Run, bucket: str) -> dict[str, tuple[str, object]]:
    """init and segments of every rendition whose playlist is in place: (ETag, LastModified)."""
    objects = run.listing(bucket, ROOT)
    out = {}
    for language in [None, *[lang["code"] for lang in LANGS]]:
        directory = layout.rendition_dir(11, language)
        if directory + layout.playlist_name(language) in objects:
            out.update({k: (o["ETag"], o["LastModified"]) for k, o in objects.items()
                        if k.startswith(directory) and not k.endswith(".m3u8")})
    return out


@pytest.mark.parametrize("n", range(KILLS))
def test_kill_9_anywhere_then_the_next_apply_converges(run, n):
    at = kill_moments()[n] * run.duration
    bucket = run.bucket()
    creates = len(run.fake.creates)

    proc = run.start(bucket)
    time.sleep(at)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    where = f"kill #{n} at {at:.2f}s of {run.duration:.2f}s" + (" (already done)" * finished)

    heads, problems = reachable_from_master(run.s3, bucket, 11)
    assert not problems, f"{where}: master names what is not there: {problems}"
    done = complete_renditions(run, bucket)
    expire_dead_lease(run.s3, bucket, proc.pid)

    started = time.monotonic()
    res = reconcile("--apply", "--store", f"s3://{bucket}", run.repo.manifests)
    assert res.code == 0, f"{where}: {res.stdout}{res.stderr}"
    assert time.monotonic() - started < 60
    plan = reconcile("--plan", "--store", f"s3://{bucket}", run.repo.manifests)
    assert plan.code == 0, f"{where}: {plan.stdout}"

    assert len(run.fake.creates) - creates == 1, f"{where}: the dub was paid for twice"
    after = run.listing(bucket, ROOT)
    rebuilt = sorted(k for k, v in done.items()
                     if k not in after or (after[k]["ETag"], after[k]["LastModified"]) != v)
    assert not rebuilt, f"{where}: complete renditions were rebuilt: {rebuilt}"
    heads, problems = reachable_from_master(run.s3, bucket, 11)
    assert not problems, f"{where}: {problems}"
    assert {k.split("/")[-2] for k in heads if k.endswith("audio.m3u8")} == {"ko", "en", "ja"}
    for key in run.listing(bucket, "locks/"):  # only the dead run's lease may linger (expiring)
        lease = json.loads(run.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert lease["owner"]["pid"] == str(proc.pid), f"{where}: the recovery left {lease}"


def test_kill_between_paying_for_a_dub_and_recording_it_does_not_pay_again(
    run, moto_server
):
    """The window the random kills rarely hit: ElevenLabs accepted (and bills) the dub, the
    run dies before the dub's id reaches the bucket (only the record written before paying,
    naming the dub, is there). The next apply must find that dub, not create it again."""
    bucket = run.bucket()
    creates = len(run.fake.creates)
    # Let the first record (before the create) through; hold the second (with the id).
    held = Rule("PUT", r"/dubbing-cache/11/en/[^/]+\.job\.json$", "pass", delay=60, skip=1)
    with FaultProxy(moto_server, rules=[held]) as proxy:
        proc = run.start(bucket, env={**run.env, "AWS_ENDPOINT_URL": proxy.url})
        deadline = time.monotonic() + 60
        while not held.fired:  # the create was answered, its id is on its way
            assert time.monotonic() < deadline and proc.poll() is None, "no job record PUT"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    expire_dead_lease(run.s3, bucket, proc.pid)
    assert len(run.fake.creates) - creates == 1
    records = [k for k in run.listing(bucket, "dubbing-cache/") if k.endswith(".job.json")]
    assert len(records) == 1
    record = json.loads(run.s3.get_object(Bucket=bucket, Key=records[0])["Body"].read())
    assert "dubbing_id" not in record and record["name"]

    res = reconcile("--apply", "--store", f"s3://{bucket}", run.repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert len(run.fake.creates) - creates == 1, "the dub was paid for twice"
