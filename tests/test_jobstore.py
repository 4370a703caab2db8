"""The API's job store seam: one contract, run against every implementation (SQLite, S3 on moto
in server mode, a local directory), then what only a shared store promises: claims that race
across replicas, leases that lapse, and a job list that equals a full read of the objects."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.api.jobstore import JobStore, JobStoreError, Status, open_job_store
from reconciler.api.jobstore.objects import JOBS, ObjectJobStore, decode, job_key, lease_key
from reconciler.store import open_store

Opener = Callable[[], JobStore]  # another handle on the same store: another replica


@pytest.fixture(params=["sqlite", "s3"])
def opener(request, tmp_path) -> Iterator[Opener]:
    """A fresh job store; calling the opener again opens the same store a second time."""
    url = f"sqlite://{tmp_path / 'jobs.sqlite3'}"
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        bucket = f"jobs-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/api-jobs"
    yield lambda: open_job_store(url)


# -- the contract ---------------------------------------------------------------------------


def test_a_job_is_stored_read_listed_and_finished(opener):
    store = opener()
    first = store.add(5, "s3://b/v.mp4", ["en", "ja"], notes=["a note"])
    assert first.status == Status.QUEUED and first.languages == ("en", "ja")
    assert first.result == {"errors": ["a note"]} and first.attempts == 0
    other = opener()  # another handle (process, replica) sees it at once
    assert other.get(first.id) == first
    assert other.get("nope") is None and other.get("../../etc/passwd") is None
    second = store.add(6, "s3://b/w.mp4", ["ko"])
    third = store.add(5, "s3://b/v.mp4", ["fr"])
    assert [j.id for j in other.recent()] == [third.id, second.id, first.id]
    assert [j.id for j in other.recent(section_id=5)] == [third.id, first.id]
    assert [j.id for j in other.recent(limit=1)] == [third.id]

    claimed = other.claim()
    assert claimed is not None and claimed.id == first.id
    assert claimed.status == Status.RUNNING and claimed.attempts == 1 and claimed.started_at
    other.finish(first.id, Status.SUCCEEDED, {"ok": True})
    done = store.get(first.id)
    assert done.status == Status.SUCCEEDED and done.result == {"ok": True} and done.finished_at
    assert [j.id for j in store.recent(status=Status.QUEUED)] == [third.id, second.id]
    with pytest.raises(ValueError, match="finishes"):
        other.finish(second.id, Status.CANCELLED, {})


def test_a_sections_jobs_are_claimed_one_at_a_time_oldest_first(opener):
    store = opener()
    first = store.add(5, "v", ["en"])
    later = store.add(5, "v", ["ja"])
    other = store.add(6, "w", ["ko"])
    assert store.claim().id == first.id
    assert store.claim().id == other.id  # another section may run meanwhile
    assert store.claim() is None  # section 5 is busy: `later` waits
    store.finish(first.id, Status.FAILED, {"ok": False})
    assert store.claim().id == later.id


def test_an_idempotency_key_names_one_job(opener):
    store, replica = opener(), opener()
    job = store.add(5, "v", ["en"], idempotency=("key-1", "digest-a"))
    again = replica.add(5, "v", ["en"], idempotency=("key-1", "digest-b"))
    assert again.id == job.id and again.request_digest == "digest-a"  # the caller compares
    assert replica.by_idempotency_key("key-1").id == job.id
    assert replica.by_idempotency_key("key-2") is None
    assert [j.id for j in replica.recent()] == [job.id]


def test_a_request_that_failed_on_acceptance_is_stored_finished(opener):
    store = opener()
    failed = store.add(5, "v", ["en"], failure={"ok": False, "errors": ["push rejected"]})
    assert failed.status == Status.FAILED and failed.finished_at
    assert store.get(failed.id).result == {"ok": False, "errors": ["push rejected"]}
    assert store.claim() is None


def test_only_a_queued_job_is_cancelled_and_never_claimed(opener):
    store = opener()
    job = store.add(5, "v", ["en"])
    running = store.add(6, "w", ["en"])
    assert store.claim().id == job.id
    assert not store.cancel(job.id)  # running: too late
    assert store.cancel(running.id)
    assert not store.cancel(running.id) and not store.cancel("nope")
    assert store.get(running.id).status == Status.CANCELLED
    store.finish(job.id, Status.SUCCEEDED, {})
    assert store.claim() is None


def test_deliveries_are_recorded_and_pending_ones_found_again(opener):
    store = opener()
    job = store.add(5, "v", ["en"])
    store.claim()
    store.finish(job.id, Status.SUCCEEDED, {})
    store.record_delivery(job.id, {"state": "pending", "attempts": 0})
    assert [j.id for j in opener().undelivered()] == [job.id]
    store.record_delivery(job.id, {"state": "delivered", "attempts": 1})
    assert opener().get(job.id).delivery == {"state": "delivered", "attempts": 1}
    assert opener().undelivered() == []


def test_claims_racing_from_many_replicas_run_each_job_once(opener):
    """Property: however many workers (threads of separate store handles, as replicas are)
    race, each job is claimed exactly once and a section never has two running."""
    store = opener()
    ids = [store.add(section, "v", ["en"]).id for section in (1, 1, 2, 3, 2, 1)]
    handles = [opener() for _ in range(6)]
    claims: list[str] = []
    running: dict[int, str] = {}
    overlaps: list[int] = []
    guard = threading.Lock()
    start = threading.Barrier(len(handles))

    def worker(handle: JobStore) -> None:
        start.wait()
        while True:
            job = handle.claim()
            if job is None:
                with guard:
                    if len(claims) == len(ids):
                        return
                continue
            with guard:
                claims.append(job.id)
                if job.section_id in running:
                    overlaps.append(job.section_id)
                running[job.section_id] = job.id
            with guard:
                del running[job.section_id]
            handle.finish(job.id, Status.SUCCEEDED, {})

    threads = [threading.Thread(target=worker, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads)
    assert sorted(claims) == sorted(ids) and not overlaps
    assert all(store.get(i).attempts == 1 and store.get(i).status == Status.SUCCEEDED for i in ids)
    order_1 = [i for i in claims if store.get(i).section_id == 1]
    assert order_1 == [ids[0], ids[1], ids[5]]  # a section's jobs in arrival order


def test_one_job_raced_by_many_claims_has_exactly_one_winner(opener):
    store = opener()
    job = store.add(9, "v", ["en"])
    handles = [opener() for _ in range(8)]
    won: list[str] = []
    start = threading.Barrier(len(handles))

    def race(handle: JobStore) -> None:
        start.wait()
        claimed = handle.claim()
        if claimed is not None:
            won.append(claimed.id)

    threads = [threading.Thread(target=race, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert won == [job.id]
    assert store.get(job.id).attempts == 1


def test_a_wrong_url_is_one_error_naming_it(tmp_path, moto_server):
    for url in ("jobs.sqlite3", "sqlite://relative.db", "s3://bucket", "s3://Bad_Bucket/jobs",
                "ftp://host/jobs", f"file://{tmp_path}/jobs", f"sqlite://{tmp_path}/"):
        with pytest.raises(JobStoreError, match="job store") as err:
            open_job_store(url)
        assert repr(url) in str(err.value) or url in str(err.value)
    with pytest.raises(JobStoreError, match="s3://no-such-bucket-here/jobs"):
        open_job_store("s3://no-such-bucket-here/jobs")


# -- what only the shared store promises ----------------------------------------------------


class Clock:
    """A wall clock the test moves (leases are compared across replicas in wall time)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shared(s3) -> tuple[str, Clock]:
    bucket = f"jobs-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/api-jobs", Clock()


def _replica(url: str, clock: Clock, lease: float = 30) -> ObjectJobStore:
    return ObjectJobStore(open_store(url), lease=lease, clock=clock)


def test_a_dead_replicas_job_runs_again_once_its_lease_lapsed_and_only_then(shared):
    url, clock = shared
    dead, alive = _replica(url, clock), _replica(url, clock)
    job = dead.add(5, "v", ["en"])
    later = dead.add(5, "v", ["ja"])
    assert dead.claim().id == job.id  # ...and then the replica died holding it
    clock.now += 29
    assert alive.claim() is None  # the lease stands: the section is busy
    clock.now += 2
    resumed = alive.claim()
    assert resumed.id == job.id and resumed.attempts == 2 and resumed.status == Status.RUNNING
    dead.finish(job.id, Status.FAILED, {"late": True})  # the old run's result does not count
    assert alive.get(job.id).status == Status.RUNNING
    alive.finish(job.id, Status.SUCCEEDED, {"ok": True})
    assert alive.get(job.id).result == {"ok": True}
    assert alive.claim().id == later.id


def test_a_half_written_idempotent_add_is_completed_by_the_next_one(shared):
    """A replica that died between the key's object and the job's own leaves the key naming a
    job no list shows; the next request with the key completes that job instead of failing."""
    url, clock = shared
    store = _replica(url, clock)
    job = store.add(5, "v", ["en"], idempotency=("k", "d"))
    store.store.delete([job_key(job.id)])  # as if its writer died before this write
    assert store.recent() == []
    again = _replica(url, clock).add(5, "v", ["en"], idempotency=("k", "d"))
    assert again.id == job.id and [j.id for j in store.recent()] == [job.id]


def _full_read(url: str) -> list[tuple]:
    """Every job object, read afresh (no cache): (id, status, attempts, delivery)."""
    objects = open_store(url)
    jobs = [decode(objects.get(key)[0])[0] for key in objects.list(JOBS)]
    return sorted((j.id, j.status, j.attempts, str(j.delivery)) for j in jobs)


OPS = st.lists(st.tuples(st.sampled_from(["add", "claim", "finish", "cancel", "deliver",
                                          "expire", "vanish"]),
                         st.integers(0, 3), st.integers(0, 1)), max_size=14)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_job_list_equals_a_full_read_of_the_objects(shared, ops):
    """Property: whatever two replicas (each with its ETag cache) do to the objects, including
    deleting one behind their backs, each one's list is exactly what a full read finds."""
    url, clock = shared
    bucket_url = f"{url}-{uuid.uuid4().hex[:8]}"  # a fresh prefix per example
    replicas = [_replica(bucket_url, clock), _replica(bucket_url, clock)]
    for op, section, who in ops:
        replica = replicas[who]
        jobs = replica.recent(limit=1000)
        if op == "add":
            replica.add(section, "v", ["en"])
        elif op == "claim":
            replica.claim()
        elif op == "finish":
            mine = list(replica._runs)
            if mine:
                replica.finish(mine[0], Status.SUCCEEDED, {})
        elif op == "cancel" and jobs:
            replica.cancel(jobs[section % len(jobs)].id)
        elif op == "deliver" and jobs:
            replica.record_delivery(jobs[section % len(jobs)].id, {"state": "pending"})
        elif op == "expire":
            clock.now += 60
        elif op == "vanish" and jobs:
            replica.store.delete([job_key(jobs[section % len(jobs)].id)])
        for each in replicas:
            listed = sorted((j.id, j.status, j.attempts, str(j.delivery))
                            for j in each.recent(limit=1000))
            assert listed == _full_read(bucket_url)
    for replica in replicas:  # leases still held stop renewing
        for job_id in list(replica._runs):
            replica.finish(job_id, Status.SUCCEEDED, {})


def test_the_objects_a_job_leaves_are_where_the_readme_says(shared):
    url, clock = shared
    store = _replica(url, clock)
    job = store.add(5, "v", ["en"], idempotency=("k", "d"))
    store.claim()
    keys = set(open_store(url).list(""))
    assert job_key(job.id) in keys and lease_key(5) in keys
    assert any(k.startswith("idempotency/") for k in keys)
    store.finish(job.id, Status.SUCCEEDED, {})
    assert lease_key(5) not in set(open_store(url).list(""))  # released with the job
    assert Path(job_key(job.id)).name == f"{job.id}.json"
