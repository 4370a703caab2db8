"""`reconcile status`, `reconcile state show`, `reconcile locks` (issue 22, item 4), through the
CLI on moto: the section × language board from the plan's own observation, one section's
objects/stamps/dub records/lock, the held leases; and that none of them writes anything."""

from __future__ import annotations

import json
import time

import pytest
from cli_helpers import reconcile, store_listing
from conftest import KO_EN

from reconciler import layout
from reconciler.lock import Lease
from reconciler.observed import STAMP_SETTINGS, STAMP_SOURCE, ObservedSection
from reconciler.plan import PendingInvalidation
from reconciler.planner import make_plan
from reconciler.status import State, board, utc

KO = [{"code": "ko", "audio": "source", "default": True}]
HOLDER = {"host": "ci-runner-7", "pid": "4242"}


def hold(s3, bucket: str, sid: int, expires: float) -> Lease:
    """A lease another run holds on the section, as SectionLock writes it."""
    lease = Lease("lock-from-elsewhere", HOLDER, "apply", expires - 300, expires)
    s3.put_object(Bucket=bucket, Key=layout.lock_key(sid), Body=lease.body())
    return lease


@pytest.fixture
def catalogue(repo, bucket, s3):
    """11 (ko, en) published, then en's playlist given the wrong Cache-Control; 12 (ko, ja)
    never applied, with a dub job record for ja; 13 (ko) published and locked by another run."""
    repo.write(11, KO_EN)
    repo.write(12, [*KO, {"code": "ja"}])
    repo.write(13, KO)
    done = reconcile("apply", repo.manifests, "--section", "11", "--section", "13")
    assert done.code == 0, done.stdout + done.stderr
    playlist = f"{layout.audio_dir(11, 'en')}{layout.playlist_name('en')}"
    head = s3.head_object(Bucket=bucket, Key=playlist)
    s3.copy_object(Bucket=bucket, Key=playlist, CopySource={"Bucket": bucket, "Key": playlist},
                   MetadataDirective="REPLACE", Metadata=head["Metadata"],
                   ContentType=head["ContentType"], CacheControl="max-age=31536000")
    job = f"{layout.dub_cache_prefix(12)}ja/0123abcd{layout.JOB_SUFFIX}"
    s3.put_object(Bucket=bucket, Key=job, Body=json.dumps(
        {"name": "section-12-ja-x", "language": "ja", "dubbing_id": "dub-in-flight"}).encode())
    lease = hold(s3, bucket, 13, time.time() + 600)
    return repo, lease


def test_status_prints_the_board_and_its_json_has_every_section_and_language(
        catalogue, bucket):
    repo, lease = catalogue
    before = store_listing(f"s3://{bucket}")

    text = reconcile("status", repo.manifests)
    assert text.code == 0, text.stderr
    rows = {line.split()[0]: line.split() for line in text.stdout.splitlines()[:4]}
    assert rows["section"] == ["section", "ko", "en", "ja"]
    assert rows["11"][1:] == ["published", "drifted", "—"]
    assert rows["12"][1:] == ["missing", "—", "dubbing"]
    assert rows["13"][1:] == ["locked", "—", "—"]
    assert "11/en: drifted: fix metadata: metadata differs" in text.stdout
    assert "12/ja: dubbing: dub dub-in-flight in progress" in text.stdout
    assert f"13: lock lock-from-elsewhere held by host ci-runner-7, pid 4242 for 'apply' " \
           f"(expires {utc(lease.expires)}" in text.stdout

    doc = reconcile("status", repo.manifests, "--format", "json").json()
    cells = {(s["sectionId"], code): cell["state"] for s in doc["sections"]
             for code, cell in s["languages"].items()}
    assert cells == {(11, "ko"): "published", (11, "en"): "drifted", (12, "ko"): "missing",
                     (12, "ja"): "dubbing", (13, "ko"): "locked"}  # every declared pair
    [locked] = [s for s in doc["sections"] if s["sectionId"] == 13]
    assert locked["lock"]["holder"] == HOLDER and locked["lock"]["live"]

    narrowed = reconcile("status", repo.manifests, "--section", "12", "--format", "json").json()
    assert [s["sectionId"] for s in narrowed["sections"]] == [12]
    assert store_listing(f"s3://{bucket}") == before  # read-only: not one object written


def test_state_show_lists_objects_stamps_dub_records_and_the_lock(catalogue, bucket):
    _repo, lease = catalogue
    before = store_listing(f"s3://{bucket}")
    shown = reconcile("state", "show", "11", "--format", "json")
    assert shown.code == 0, shown.stderr
    doc = shown.json()
    assert doc["masterLanguages"] == ["ko", "en"] and doc["lock"] is None
    assert set(doc["objects"]) == {k for k in before if k.startswith(layout.section_prefix(11))}
    video_playlist = doc["objects"][layout.video_dir(11) + layout.playlist_name(None)]
    assert {STAMP_SOURCE, STAMP_SETTINGS} <= set(video_playlist["metadata"])

    dubbed = reconcile("state", "show", "12", "--format", "json").json()
    assert [record["dubbing_id"] for record in dubbed["dubJobs"].values()] == ["dub-in-flight"]
    locked = reconcile("state", "show", "13")
    assert f"lock: lock lock-from-elsewhere held by host ci-runner-7, pid 4242 for 'apply' " \
           f"(expires {utc(lease.expires)}" in locked.stdout
    assert "master.m3u8" in locked.stdout
    assert store_listing(f"s3://{bucket}") == before


def test_locks_lists_held_leases_with_holder_and_expiry(catalogue, bucket, s3):
    _repo, lease = catalogue
    stale = hold(s3, bucket, 11, time.time() - 60)  # left by a run that died
    before = store_listing(f"s3://{bucket}")
    listed = reconcile("locks")
    assert listed.code == 0, listed.stderr
    held_by = "lock lock-from-elsewhere held by host ci-runner-7, pid 4242 for 'apply'"
    first, second = listed.stdout.splitlines()
    assert first.startswith(f"section 11: {held_by} (expires {utc(stale.expires)}, expired ")
    assert second.startswith(f"section 13: {held_by} (expires {utc(lease.expires)}, in ")
    doc = reconcile("locks", "--format", "json").json()
    assert [(entry["sectionId"], entry["holder"], entry["expires"], entry["live"])
            for entry in doc["locks"]] == [(11, HOLDER, utc(stale.expires), False),
                                           (13, HOLDER, utc(lease.expires), True)]
    assert store_listing(f"s3://{bucket}") == before


def test_no_locks_and_no_store(bucket, monkeypatch):
    assert reconcile("locks").stdout == "No locks held.\n"
    monkeypatch.delenv("AWS_BUCKET_NAME")
    res = reconcile("locks")
    assert res.code == 1 and "no store" in res.stderr


def test_a_pending_invalidation_shows_only_where_nothing_else_does():
    """The board's precedence, as a pure function: published sections whose CDN paths are
    still pending say so; a lease that expired does not lock the row."""
    from test_plan import KO as KO_LANG
    from test_plan import converged, section

    sec = section(KO_LANG)
    obs: ObservedSection = converged(sec)
    pending = PendingInvalidation((layout.cdn_path(layout.master_key(11)),), "2026-01-01T00:00Z")
    plan = make_plan([sec], {11: obs}, pending=pending)
    expired = Lease("old", HOLDER, "apply", 0.0, 50.0)
    b = board(plan, [sec], {11: obs}, {11: expired}, now=100.0)
    assert b.rows[0].cells["ko"].state == State.PENDING
    assert board(plan, [sec], {11: obs}, {11: expired}, now=10.0).rows[0].cells["ko"].state \
        == State.LOCKED
