"""Two `reconcile serve` processes behind one S3 job store (moto in server mode): any replica
answers any job, an Idempotency-Key holds across them, and a replica killed mid-job (SIGKILL)
has that job resumed by the other once its lease lapsed. Plus a careless `--job-store`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, master_languages

from reconciler import samples

TOKEN = "test-replica-token-" + uuid.uuid4().hex
ROOT = Path(__file__).resolve().parent.parent
LEASE = 3  # seconds: how soon the survivor resumes a dead replica's job


class Replica:
    """One `reconcile serve` process on a free port."""

    def __init__(self, manifests: Path, data: Path, job_store: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.with_suffix(".log")
        data.mkdir(parents=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "serve", "--port", str(self.port),
                 "--manifests", str(manifests), "--data-dir", str(data), "--workers", "1",
                 "--job-store", job_store],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "RECONCILER_API_TOKEN": TOKEN,
                     "RECONCILER_JOB_LEASE": str(LEASE)})

    def wait_ready(self, timeout: float = 60) -> Replica:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as http:  # one client: each new one builds a TLS context
            while True:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "replica did not start"
                time.sleep(0.1)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Bearer {TOKEN}"})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def replicas(tmp_path, s3, bucket, distribution, eleven, monkeypatch) -> Iterator[dict]:
    """Two replicas sharing one manifests folder and s3://BUCKET/api-jobs; an uploads bucket
    holding a 2 s clip is the only allowed source."""
    uploads = f"uploads-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=uploads)
    clip = samples.make_video(tmp_path / "clip.mp4", seconds=2, size="160x90", tone_hz=440)
    s3.upload_file(str(clip), uploads, "lectures/clip.mp4")
    monkeypatch.setenv("RECONCILER_ALLOWED_SOURCES", f"s3://{uploads}")
    monkeypatch.setenv("NEXT_PUBLIC_CDN_URL", "https://cdn.test.example")
    manifests = tmp_path / "repo" / "manifests"
    manifests.mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    job_store = f"s3://{bucket}/api-jobs"
    started = [Replica(manifests, tmp_path / name, job_store) for name in ("a", "b")]
    try:
        yield {"a": started[0].wait_ready(), "b": started[1].wait_ready(), "bucket": bucket,
               "video": f"s3://{uploads}/lectures/clip.mp4"}
    finally:
        for replica in started:
            replica.stop()


def _poll(client: httpx.Client, job_id: str, until, timeout: float = 90) -> dict:
    """The job once `until(job)` holds (bounded: a deadline, not a sleep that means anything)."""
    deadline = time.monotonic() + timeout
    while True:
        res = client.get(f"/api/dubbing/jobs/{job_id}")
        assert res.status_code == 200, res.text
        if until(res.json()):
            return res.json()
        assert time.monotonic() < deadline, f"job {job_id}: still {res.json()['status']}"
        time.sleep(0.1)


def test_any_replica_answers_any_job_and_resumes_a_killed_ones(replicas, s3, eleven):
    a, b, bucket = replicas["a"], replicas["b"], replicas["bucket"]
    eleven.steps_to_dub = 10**6  # dubs do not end until the test says so
    body = {"inputVideoUrl": replicas["video"], "targetLanguages": ["en"],
            "curriculumSectionId": 51}
    with a.client() as on_a, b.client() as on_b:
        first = on_a.post("/api/dubbing", json=body, headers={"Idempotency-Key": "k-51"})
        assert first.status_code == 202, first.text
        job_id = first.json()["jobId"]
        retried = on_b.post("/api/dubbing", json=body, headers={"Idempotency-Key": "k-51"})
        assert retried.status_code == 202 and retried.json()["jobId"] == job_id
        other = on_b.post("/api/dubbing", json={**body, "targetLanguages": ["ja"]},
                          headers={"Idempotency-Key": "k-51"})
        assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"

        later = on_b.post("/api/dubbing", json={**body, "targetLanguages": ["ja"]})
        assert later.status_code == 202, later.text
        later_id = later.json()["jobId"]  # queued behind the first: same section
        assert on_a.get(f"/api/dubbing/jobs/{later_id}").json()["status"] == "queued"
        cancelled = on_a.delete(f"/api/dubbing/jobs/{later_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert on_b.get(f"/api/dubbing/jobs/{later_id}").json()["status"] == "cancelled"
        listed = on_a.get("/api/dubbing/jobs", params={"sectionId": 51}).json()["jobs"]
        assert [j["jobId"] for j in listed] == [later_id, job_id]

        _poll(on_b, job_id, lambda job: job["status"] == "running")
        deadline = time.monotonic() + 60
        while not eleven.creates:  # mid-job: its dub is being made
            assert time.monotonic() < deadline, "the job never asked for its dub"
            time.sleep(0.05)
        lease = json.loads(s3.get_object(Bucket=bucket, Key="api-jobs/running/51.json")[
            "Body"].read())
        runner = next(r for r in (a, b) if r.proc.pid == int(lease["owner"]["pid"]))
        survivor, survivor_client = (b, on_b) if runner is a else (a, on_a)
        runner.proc.send_signal(signal.SIGKILL)
        runner.proc.wait(10)

        eleven.steps_to_dub = 1  # the dub may end now
        done = _poll(survivor_client, job_id, lambda job: job["status"] in ("succeeded",
                                                                            "failed"))
    assert done["status"] == "succeeded", done
    # The cancelled job's language stays declared (the API never removes one), so the
    # section's reconcile serves it too.
    assert sorted(done["languagesReady"]) == ["en", "ja"]
    assert sorted(master_languages(s3, bucket, 51)) == ["en", "ja"]
    stored = json.loads(s3.get_object(Bucket=bucket, Key=f"api-jobs/jobs/{job_id}.json")[
        "Body"].read())
    assert stored["attempts"] == 2, stored  # run by the killed replica, then the survivor
    assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "ja"]  # each paid once
    assert survivor.proc.poll() is None


@pytest.mark.parametrize("url", ["s3://no-such-bucket-for-jobs/api-jobs", "s3://Bad_Bucket/x",
                                 "s3://somebucket", "jobs.sqlite3", "postgres://db/jobs"])
def test_a_wrong_job_store_is_one_error_naming_it_and_exit_1(url, tmp_path, bucket):
    """Before serving anything: bounded by a timeout, since a server that ignored the URL would
    serve forever."""
    (tmp_path / "manifests").mkdir()
    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve", "--port", str(free_port()),
         "--manifests", str(tmp_path / "manifests"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RECONCILER_API_TOKEN": TOKEN,
             "RECONCILER_ALLOWED_SOURCES": "s3://uploads", "RECONCILER_JOB_STORE": url})
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()  # the server's INFO log may come before
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == [lines[-1]] and url in errors[0], res.stderr
    assert "Traceback" not in res.stderr
