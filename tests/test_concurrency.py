"""Two applies at once, a lock somebody holds, and conditional writes: the section lease
serializes applies (the second re-plans under the lock and finds nothing left to do), a held
lease is reported naming its holder and can be removed only with its id, and master is written
with If-Match / If-None-Match so a change under a run is re-planned, never overwritten blindly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import boto3
import pytest
from cli_helpers import reconcile
from conftest import KO_EN, master_languages
from faultproxy import ASSETS, FaultProxy, Rule, reachable_from_master

from reconciler import layout
from reconciler.layout import lock_key
from reconciler.lock import SectionLock
from reconciler.store import PreconditionFailed
from reconciler.store.local import LocalStore
from reconciler.store.s3 import S3Store, s3_client

LANGS = [
    {"code": "ko", "audio": "source", "default": True},
    {"code": "en"},  # dubbed
    {"code": "ja", "name": "Japanese", "audio": "../media/ja.m4a"},
]
MASTER = f"{ASSETS}/11/master.m3u8"





class LeaseWatcher(threading.Thread):
    """Polls the section's lease object; records each change as (time, lock_id, pid or None)."""

    def __init__(self, bucket: str, limit: float = 120) -> None:
        super().__init__(daemon=True, name="lease-watcher")
        self.client = boto3.client("s3", region_name="us-east-1")
        self.bucket, self.limit = bucket, limit
        self.changes: list[tuple[float, str | None, str | None]] = []
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        last: tuple[str | None, str | None] = (None, None)
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=lock_key(11))["Body"]
                lease = json.loads(body.read())
                now = (lease["lock_id"], lease["owner"]["pid"])
            except self.client.exceptions.NoSuchKey:
                now = (None, None)
            if now != last:
                self.changes.append((time.monotonic(), *now))
                last = now
            self.done.wait(0.02)


def test_two_applies_started_together_serialize_and_lose_nothing(repo, bucket, s3, eleven):
    eleven.steps_to_dub = 20  # a dub long enough for the two runs to overlap
    repo.write(11, LANGS)
    watcher = LeaseWatcher(bucket)
    watcher.start()
    cmd = [sys.executable, "-m", "reconciler.cli", "--apply", str(repo.manifests)]
    began = time.monotonic()
    procs = [subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True) for _ in range(2)]
    ended: dict[int, float] = {}
    try:
        while len(ended) < 2 and time.monotonic() - began < 120:
            for p in procs:
                if p.poll() is not None:
                    ended.setdefault(p.pid, time.monotonic())
            time.sleep(0.02)
        outputs = {p.pid: (p.returncode, *(b.decode() for b in p.communicate(timeout=10)))
                   for p in procs}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        watcher.done.set()
        watcher.join(5)

    for code, out, err in outputs.values():
        assert code == 0, out + err
    workers = [pid for pid, (_, out, _) in outputs.items() if "dubbed 1" in out]
    idle = [pid for pid, (_, out, _) in outputs.items() if "nothing to do" in out]
    assert len(workers) == 1 and len(idle) == 1, outputs  # the work was done exactly once
    (worker,), (other,) = workers, idle
    # The lease existed during the run, held by the worker for the seconds its work took.
    held_from = next((t for t, _, pid in watcher.changes if pid == str(worker)), None)
    assert held_from is not None, watcher.changes
    held_until = next((t for t, lock_id, _ in watcher.changes
                       if lock_id is None and t > held_from), None)
    assert held_until is not None and held_until - held_from > 1.0, watcher.changes
    # Both started together; the other observed changes while the worker worked, waited for
    # the lease, then re-planned under it and found nothing left to do (it did no work, and
    # ended only after the worker let go).
    assert ended[other] >= held_until - 0.05, (ended, watcher.changes)

    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en", "ja"]
    heads, problems = reachable_from_master(s3, bucket, 11)
    assert not problems and len(heads) > 10, problems
    assert reconcile("--plan", repo.manifests).code == 0
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="locks/").get("Contents")


def test_a_held_lock_blocks_naming_its_holder_until_unlocked_with_its_id(repo, bucket, s3):
    repo.write(11, KO_EN)
    lock = SectionLock(S3Store(bucket), 11, ttl=60, operation="maintenance")
    lock.acquire()
    try:
        lock_id = lock.lease.lock_id
        started = time.monotonic()
        blocked = reconcile("--apply", repo.manifests, "--lock-timeout", "1")
        assert blocked.code == 1
        assert 1.0 <= time.monotonic() - started < 30
        for part in (lock_id, f"host {socket.gethostname()}", f"pid {os.getpid()}",
                     "'maintenance'", "reconcile unlock 11 --lock-id"):
            assert part in blocked.stderr, blocked.stderr
        assert not s3.list_objects_v2(Bucket=bucket, Prefix=f"{ASSETS}/").get("Contents")

        wrong = reconcile("unlock", "11", "--lock-id", "WRONG")
        assert wrong.code == 1
        assert f"held by lock {lock_id}, not WRONG" in wrong.stderr
        assert s3.get_object(Bucket=bucket, Key=lock_key(11))  # still there

        live = reconcile("unlock", "11", "--lock-id", lock_id)  # its holder is alive
        assert live.code == 1 and "is live: it expires at" in live.stderr, live.stderr
        assert "--force" in live.stderr and s3.get_object(Bucket=bucket, Key=lock_key(11))
        right = reconcile("unlock", "11", "--lock-id", lock_id, "--force")
        assert right.code == 0, right.stderr
        assert f"removed lock {lock_id}" in right.stdout and f"pid {os.getpid()}" in right.stdout

        applied = reconcile("--apply", repo.manifests, "--lock-timeout", "1")
        assert applied.code == 0, applied.stdout + applied.stderr
        assert master_languages(s3, bucket) == ["ko", "en"]
    finally:
        lock.release()
    assert reconcile("unlock", "11", "--lock-id", lock_id).code == 1  # nothing left to unlock


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    bucket = request.getfixturevalue("bucket")
    return S3Store(bucket)


def test_conditional_writes_lose_the_race_instead_of_overwriting(store):
    meta = layout.PLAYLIST_META
    key = f"{ASSETS}/11/master.m3u8"
    first = store.put_bytes(key, b"#EXTM3U\n# one\n", meta, if_none_match=True)
    second = store.put_bytes(key, b"#EXTM3U\n# two\n", meta, if_match=first)
    assert second != first
    with pytest.raises(PreconditionFailed):
        store.put_bytes(key, b"#EXTM3U\n# stale\n", meta, if_match=first)
    with pytest.raises(PreconditionFailed):
        store.put_bytes(key, b"#EXTM3U\n# blind\n", meta, if_none_match=True)
    body, info = store.get(key)
    assert body == b"#EXTM3U\n# two\n" and info.etag == second


def test_conditional_write_on_a_deleted_object_loses_the_race_too(store):
    """master was there at observe time and is gone at write time (If-Match on a missing key):
    both stores must say PreconditionFailed, so the engine re-plans. S3 answers 404 here."""
    meta = layout.PLAYLIST_META
    key = f"{ASSETS}/11/master.m3u8"
    etag = store.put_bytes(key, b"#EXTM3U\n", meta)
    store.delete([key])
    with pytest.raises(PreconditionFailed):
        store.put_bytes(key, b"#EXTM3U\n# late\n", meta, if_match=etag)
    assert store.get(key) is None


def test_master_changed_between_observe_and_write_is_replanned(
    repo, bucket, s3, moto_server, monkeypatch
):
    """Someone writes master after this apply observed it and before it writes: the apply's
    conditional write loses (412), it re-observes, re-plans and writes master from what it
    now sees (keeping nothing of the stranger's text)."""
    repo.write(11, KO_EN)

    def stranger(_seen) -> None:
        s3.put_object(Bucket=bucket, Key=MASTER, Body=b"#EXTM3U\n# written by someone else\n",
                      ContentType="application/vnd.apple.mpegurl")

    rule = Rule("PUT", r"/master\.m3u8$", "pass", times=1, hook=stranger)
    with FaultProxy(moto_server, rules=[rule]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        s3_client.cache_clear()
        try:
            res = reconcile("--apply", repo.manifests)
        finally:
            monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
            s3_client.cache_clear()
        puts = [s for s in proxy.seen if s.method == "PUT" and s.key == MASTER]
    assert [s.outcome for s in puts] == ["forwarded 412", "forwarded 200"]
    assert "if-none-match" in puts[0].headers and "if-match" in puts[1].headers
    assert res.code == 0, res.stdout + res.stderr
    body = s3.get_object(Bucket=bucket, Key=MASTER)["Body"].read()
    assert b"someone else" not in body
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert reconcile("--plan", repo.manifests).code == 0
