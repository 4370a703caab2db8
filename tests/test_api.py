"""The HTTP API, over real HTTP: uvicorn on a free loopback port, driven with httpx, against moto
(S3 + CloudFront) and the fake ElevenLabs server. The API must be the same engine as the CLI, so
several tests also check the manifests it writes with the CLI itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from cli_helpers import reconcile
from conftest import free_port, master_languages
from fake_elevenlabs import FakeElevenLabs

from reconciler import samples
from reconciler.api import (
    AllowedSources,
    ApiConfig,
    ApiConfigError,
    check_exposure,
    create_app,
    resolve_host,
)
from reconciler.api.http import Limits, server_config
from reconciler.api.jobs import JobQueue
from reconciler.api.jobstore import JobStoreBusy, Status
from reconciler.api.jobstore.sqlite import SqliteJobStore
from reconciler.api.webhooks import Webhook
from reconciler.redaction import one_line

TOKEN = "test-api-token-" + uuid.uuid4().hex
CDN = "https://cdn.test.lingoost.example"
PREFIX = "assets/curriculumsection"
SPEC_LANGS = ["ko", "en", "ja"]


class ApiServer:
    """uvicorn serving create_app(config) in a thread (real sockets, real lifespan)."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(
            create_app(config), config.limits, "127.0.0.1", self.port, log_level="warning",
            lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "server did not stop"

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=150)


@pytest.fixture
def eleven(monkeypatch):
    fake = FakeElevenLabs(steps_to_dub=1).start()
    monkeypatch.setenv("ELEVENLABS_API_KEY", fake.api_key)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake.base_url)
    monkeypatch.setenv("ELEVENLABS_POLL_INTERVAL", "0.05")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 2 s lecture: enough for five languages to be dubbed and packaged quickly."""
    return samples.make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2,
                              size="160x90", tone_hz=440)


@pytest.fixture
def source(s3, media, clip, monkeypatch):
    """A second bucket (the uploads bucket) holding the source videos; the only allowed one."""
    name = f"uploads-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.upload_file(str(media / "lecture.mp4"), name, "lectures/11/source.mp4")
    s3.upload_file(str(clip), name, "lectures/clip.mp4")
    monkeypatch.setenv("RECONCILER_ALLOWED_SOURCES", f"s3://{name},https://media.example.com")
    return name


@pytest.fixture
def api(tmp_path, bucket, distribution, source, eleven, monkeypatch):
    """Start API servers: api(workers=2, **config overrides) -> a running ApiServer."""
    monkeypatch.setenv("NEXT_PUBLIC_CDN_URL", CDN)
    monkeypatch.setenv("RECONCILER_API_TOKEN", TOKEN)
    manifests = tmp_path / "repo" / "manifests"
    manifests.mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()  # bounds relative paths, as in a checkout
    servers: list[ApiServer] = []

    def start(**overrides) -> ApiServer:
        overrides.setdefault("workers", 2)
        config = ApiConfig.from_env(manifests, tmp_path / "data", **overrides)
        server = ApiServer(config).start()
        servers.append(server)
        return server

    start.manifests = manifests  # type: ignore[attr-defined]
    start.data = tmp_path / "data"  # type: ignore[attr-defined]
    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()


def spec_body(bucket: str, sid: int = 11, langs=None, key="lectures/11/source.mp4") -> dict:
    return {"inputVideoUrl": f"s3://{bucket}/{key}", "targetLanguages": langs or SPEC_LANGS,
            "curriculumSectionId": sid}


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = client.get(f"/api/dubbing/jobs/{job_id}").json()
        if doc["status"] in (Status.SUCCEEDED, Status.FAILED):
            return doc
        assert time.monotonic() < deadline, f"job {job_id} still {doc['status']}"
        time.sleep(0.1)


def job_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


# -- the spec's request -------------------------------------------------------------------


def test_spec_request_end_to_end_then_identical_request_answers_at_once(
    api, s3, bucket, source, eleven, monkeypatch
):
    monkeypatch.setenv("RECONCILER_SOURCE_LANGUAGE", "ko")  # the lectures are Korean
    server = api()
    with server.client() as client:
        res = client.post("/api/dubbing", params={"wait": 120}, json=spec_body(source))
        assert res.status_code == 200, res.text
        body = res.json()
        assert {k: body[k] for k in ("ok", "sectionId", "languagesReady", "masterUrl")} == {
            "ok": True, "sectionId": 11, "languagesReady": SPEC_LANGS,
            "masterUrl": f"{CDN}/{PREFIX}/11/master.m3u8",
        }
        assert body["languagesFailed"] == []
        head = s3.head_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")
        assert head["ContentType"] == "application/vnd.apple.mpegurl"
        assert master_languages(s3, bucket) == SPEC_LANGS
        # Korean is the video's own track (not dubbed Korean into Korean): two paid dubs.
        assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "ja"]
        assert {c["source_lang"] for c in eleven.creates} == {"ko"}

        job = client.get(f"/api/dubbing/jobs/{body['jobId']}").json()
        assert job["status"] == Status.SUCCEEDED and job["ok"] is True
        assert job["languagesRequested"] == SPEC_LANGS
        assert job["startedAt"] <= job["finishedAt"]

        # The manifest is an ordinary one: the CLI validates it and finds nothing to do.
        manifest = api.manifests / "section-11.yaml"
        text = manifest.read_text()
        assert text.startswith("# Written by the reconciler HTTP API")
        assert manifest.stat().st_mode & 0o777 == 0o644
        assert [p.name for p in api.manifests.iterdir()] == ["section-11.yaml"]  # no temp left
        assert yaml.safe_load(text) == {
            "sectionId": 11, "video": f"s3://{source}/lectures/11/source.mp4",
            "sourceLanguage": "ko",
            "languages": [{"code": "ko", "audio": "source"}, {"code": "en"}, {"code": "ja"}],
        }
        assert reconcile("--plan", api.manifests).code == 0

        section = client.get("/api/sections/11").json()
        assert [d["code"] for d in section["declaredLanguages"]] == SPEC_LANGS
        assert [d["dubbed"] for d in section["declaredLanguages"]] == [False, True, True]
        assert section["observedLanguages"] == SPEC_LANGS

        jobs_before, creates_before = job_rows(api.data), len(eleven.creates)
        started = time.monotonic()
        again = client.post("/api/dubbing", json=spec_body(source))
        assert again.status_code == 200, again.text
        assert time.monotonic() - started < 15  # no job, no dub: one read of the store
        assert again.json()["ok"] is True and again.json()["jobId"] is None
        assert again.json()["languagesReady"] == SPEC_LANGS
        assert job_rows(api.data) == jobs_before  # no new job
        assert len(eleven.creates) == creates_before  # nothing paid again


def test_twenty_concurrent_posts_for_one_section_serialize_in_arrival_order(
    api, s3, bucket, source, eleven
):
    server = api(workers=2)
    langs = ["ko", "en", "ja", "de", "fr"]
    bodies = [spec_body(source, 21, [langs[i % 5]], key="lectures/clip.mp4") for i in range(20)]
    with server.client() as client, ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda b: client.post("/api/dubbing", json=b), bodies))
        assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
        job_ids = [a.json()["jobId"] for a in answers if a.status_code == 202]
        assert all(a.json()["statusUrl"] == f"/api/dubbing/jobs/{a.json()['jobId']}"
                   for a in answers if a.status_code == 202)
        assert len(job_ids) >= 5  # every language's first request needed a job
        docs = [wait_job(client, j, timeout=75) for j in job_ids]
    assert [d["status"] for d in docs] == [Status.SUCCEEDED] * len(docs), docs
    assert sorted(master_languages(s3, bucket, 21)) == sorted(langs)
    declared = [d["code"] for d in yaml.safe_load(
        (api.manifests / "section-21.yaml").read_text())["languages"]]
    assert sorted(declared) == sorted(langs)  # each language added exactly once
    assert sorted(c["target_lang"] for c in eleven.creates) == sorted(langs)  # paid once each

    runs = sorted((datetime.fromisoformat(d["createdAt"]), datetime.fromisoformat(d["startedAt"]),
                   datetime.fromisoformat(d["finishedAt"])) for d in docs)
    for (_c1, s1, f1), (_c2, s2, _f2) in zip(runs, runs[1:], strict=False):
        assert s1 <= f1 <= s2, "two jobs of one section overlapped, or ran out of order"


# -- durability ---------------------------------------------------------------------------


def test_a_job_accepted_by_a_stopped_server_is_run_by_the_next_one(api, s3, bucket, source,
                                                                   eleven):
    first = api(workers=0)  # accepts, runs nothing: the job is only on disk
    with first.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 31, ["en"], "lectures/clip.mp4"))
        assert res.status_code == 202, res.text
        job_id = res.json()["jobId"]
        assert client.get(f"/api/dubbing/jobs/{job_id}").json()["status"] == Status.QUEUED
    first.stop()

    second = api(workers=1)
    with second.client() as client:
        doc = wait_job(client, job_id)
    assert doc["status"] == Status.SUCCEEDED and doc["languagesReady"] == ["en"]
    assert master_languages(s3, bucket, 31) == ["en"]
    assert [c["target_lang"] for c in eleven.creates] == ["en"]  # paid once, by the second


def test_request_source_language_is_served_from_the_video_and_never_dubbed(api, source, eleven,
                                                                          s3, bucket):
    server = api(workers=1)
    with server.client() as client:
        body = {**spec_body(source, 12, ["ja", "ko"]), "sourceLanguage": "ko"}
        res = client.post("/api/dubbing", params={"wait": 120}, json=body)
        assert res.status_code == 200, res.text
        assert res.json()["ok"] is True and res.json()["languagesReady"] == ["ja", "ko"]
        assert [c["target_lang"] for c in eleven.creates] == ["ja"]  # one paid dub
        doc = yaml.safe_load((api.manifests / "section-12.yaml").read_text())
        assert doc["sourceLanguage"] == "ko" and {"code": "ko", "audio": "source"} in \
            doc["languages"]
        conflict = client.post("/api/dubbing", json={**body, "sourceLanguage": "en"})
        assert conflict.status_code == 409 and conflict.json()["field"] == "sourceLanguage"
        assert len(eleven.creates) == 1


def test_job_over_the_spend_cap_fails_with_the_figure_and_pays_nothing(api, source, eleven):
    server = api(workers=1, max_dub_minutes=0.1)
    with server.client() as client:
        res = client.post("/api/dubbing", params={"wait": 60},
                          json=spec_body(source, 13, ["en", "ja"]))
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["ok"] is False and body["languagesReady"] == []
        reasons = {f["code"]: f["reason"] for f in body["languagesFailed"]}
        assert set(reasons) == {"en", "ja"}
        assert all("new dubbing would bill 0.17 minutes, over --max-dub-minutes 0.1" in r
                   for r in reasons.values()), reasons
        assert eleven.creates == [] and eleven.requests == []


def test_a_failing_job_reports_why_per_language(api, source, s3, clip):
    s3.upload_file(str(clip), source, "lectures/soon-gone.mp4")
    accepting = api(workers=0)
    with accepting.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 32, ["en", "ja"],
                                                         "lectures/soon-gone.mp4"))
        assert res.status_code == 202, res.text
    accepting.stop()
    s3.delete_object(Bucket=source, Key="lectures/soon-gone.mp4")  # gone before the job runs
    server = api(workers=1)
    with server.client() as client:
        body = client.get(f"/api/dubbing/jobs/{res.json()['jobId']}").json()
        body = wait_job(client, body["jobId"])
        assert body["ok"] is False and body["languagesReady"] == []
        assert [f["code"] for f in body["languagesFailed"]] == ["en", "ja"]
        assert all("no such object" in f["reason"] for f in body["languagesFailed"])
        assert body["status"] == Status.FAILED and body["ok"] is False


def test_a_video_that_cannot_be_read_is_refused_and_nothing_is_written(api, source, s3, media):
    """Issue 23 item 3: a missing object or one that is not a video was written into the
    manifest for good, and every later catalogue apply exited 1."""
    s3.upload_file(str(media / "en.mp3"), source, "lectures/voice.mp3")
    server = api(workers=0)
    with server.client() as client:
        missing = client.post("/api/dubbing", json=spec_body(source, 36, ["en"],
                                                             "lectures/missing.mp4"))
        assert missing.status_code == 422, missing.text
        assert missing.json()["error"] == "video_unreadable"
        assert missing.json()["field"] == "inputVideoUrl"
        assert "lectures/missing.mp4: no such object" in missing.json()["message"]
        audio = client.post("/api/dubbing", json=spec_body(source, 36, ["en"],
                                                           "lectures/voice.mp3"))
        assert audio.status_code == 422 and audio.json()["error"] == "not_a_video", audio.text
        dry = client.post("/api/dubbing", params={"dryRun": "true"},
                          json=spec_body(source, 36, ["en"], "lectures/missing.mp4"))
        assert dry.status_code == 422, dry.text
        assert list(api.manifests.iterdir()) == []
        assert client.get("/api/dubbing/jobs").json()["jobs"] == []

        ok = client.post("/api/dubbing", json=spec_body(source, 36, ["en"]))
        assert ok.status_code == 202, ok.text  # the control: a readable video is accepted
        manifest = (api.manifests / "section-36.yaml").read_text()
        replace = client.post("/api/dubbing", json={
            **spec_body(source, 36, ["ja"], "lectures/missing.mp4"), "replaceVideo": True})
        assert replace.status_code == 422 and replace.json()["error"] == "video_unreadable"
        assert (api.manifests / "section-36.yaml").read_text() == manifest
        assert len(client.get("/api/dubbing/jobs").json()["jobs"]) == 1


def test_a_language_elevenlabs_does_not_dub_is_refused_and_nothing_is_written(api, source):
    """Issue 23 item 3, the language half: the staged manifest is validated with ElevenLabs'
    language table (reconciler/dubbing_languages.py, issue 20) before it is written."""
    table = pytest.importorskip("reconciler.dubbing_languages")
    assert table.elevenlabs_code("tlh") is None  # Klingon: a valid tag, not dubbed
    server = api(workers=0)
    with server.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 37, ["en", "tlh"]))
        assert res.status_code == 422, res.text
        assert res.json()["field"] == "targetLanguages" and "tlh" in res.json()["message"]
        assert list(api.manifests.iterdir()) == []
        assert client.get("/api/dubbing/jobs").json()["jobs"] == []


def test_a_job_left_running_by_a_dead_server_runs_again_before_later_ones(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    first = store.add(5, "s3://b/v.mp4", ["en"])
    later = store.add(5, "s3://b/v.mp4", ["ja"])
    other = store.add(6, "s3://b/w.mp4", ["ko"])
    assert store.claim().id == first.id  # ...and then the process died
    assert store.claim().id == other.id  # another section may run meanwhile
    assert store.claim() is None  # section 5 is busy: `later` must wait
    store.finish(other.id, Status.SUCCEEDED, {})
    store.close()

    ran: list[str] = []
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    queue = JobQueue(store, lambda job: (ran.append(job.id), (Status.SUCCEEDED, {"ok": True}))[1],
                     workers=2)
    queue.start()
    deadline = time.monotonic() + 10
    while not all(store.get(j).finished for j in (first.id, later.id)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queue.stop()
    assert ran == [first.id, later.id]
    assert store.get(first.id).attempts == 2
    assert (store.get(first.id).status == Status.SUCCEEDED
            and store.get(first.id).status != Status.RUNNING)
    owner = JobQueue(store, lambda job: (Status.SUCCEEDED, {}), workers=0)
    owner.start()
    with pytest.raises(JobStoreBusy):  # one server per data directory
        JobQueue(store, lambda job: (Status.SUCCEEDED, {}), workers=0).start()
    owner.stop()


def test_a_job_error_is_one_redacted_line_or_its_type():
    """What a job reports of an exception (and preview of a store error): the first line, with
    a presigned URL's query gone; an error that says nothing is named by its type."""
    err = ValueError("GET https://h/v.mp4?X-Amz-Signature=SECRET: refused\nmore detail")
    assert one_line(err) == "GET https://h/v.mp4?… refused"
    assert one_line(OSError()) == "OSError"


def test_a_crashing_job_keeps_the_note_it_was_accepted_with(tmp_path):
    """A job accepted with a note (a failed git commit) that then crashes ends with both: the
    note first, then the generic crash reason; the crash never replaces what the client was
    already told."""

    def crash(_job):
        raise RuntimeError("a bug in the runner")

    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    queue = JobQueue(store, crash, workers=1)
    queue.start()
    job = queue.submit(7, "s3://b/v.mp4", ["en"], ["section-7.yaml was written but not "
                                                    "committed to git (git commit: failed)"])
    deadline = time.monotonic() + 10
    while not store.get(job.id).finished:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queue.stop()
    done = store.get(job.id)
    assert done.status == Status.FAILED
    assert done.result == {"errors": [
        "section-7.yaml was written but not committed to git (git commit: failed)",
        "internal error (see the server log)"]}
    assert "a bug in the runner" not in str(done.result)


# -- the contract: schema fuzzing, SSRF, auth, conflicts, limits ------------------------------


def test_schemathesis_finds_no_server_error(api, tmp_path):
    server = api(workers=0, allowed_sources=AllowedSources.parse("s3://fuzz-allowed-only"))
    proc = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
         "run", f"{server.url}/openapi.json",
         "-H", f"Authorization: Bearer {TOKEN}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--max-examples", "30", "--workers", "1", "--seed", "7",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "20", "--no-shrink"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counts and int(counts[1]) == int(counts[2]) >= 100, out[-3000:]


SSRF_CASES = {
    "http://media.example.com/v.mp4": "only s3://",
    "ftp://media.example.com/v.mp4": "only s3://",
    "file:///etc/passwd": "only s3://",
    "https://127.0.0.1/x": "loopback",
    "https://localhost/x": "loopback",
    "https://10.0.0.1/x": "private",
    "https://[::1]/x": "loopback",
    "https://169.254.169.254/latest/meta-data": "link-local",
    "https://rebind.example/x": "private",  # an allowed name that resolves inside
    "https://user:pw@media.example.com/x": "credentials",
    "https://other.example/x": "not an allowed source",
    "https://media.example.com:8443/x": "not an allowed source",
    "s3://someone-elses-bucket/x.mp4": "not an allowed source",
}


def test_unsafe_input_urls_are_refused_with_the_field(api, source):
    allowed = (f"s3://{source},https://media.example.com,https://localhost,https://127.0.0.1,"
               "https://10.0.0.1,https://[::1],https://169.254.169.254,https://rebind.example,https://boom.example")
    fake_dns = {"rebind.example": ["10.9.8.7"], "media.example.com": ["93.184.216.34"]}

    def resolver(host: str, port: int) -> list[str]:
        if host == "boom.example":
            raise RuntimeError("secret-internal-detail")
        return fake_dns[host] if host in fake_dns else resolve_host(host, port)

    server = api(workers=0, allowed_sources=AllowedSources.parse(allowed), resolver=resolver)
    with server.client() as client:
        for i, (url, why) in enumerate(SSRF_CASES.items()):
            body = {"inputVideoUrl": url, "targetLanguages": ["en"], "curriculumSectionId": 40 + i}
            res = client.post("/api/dubbing", json=body)
            assert res.status_code in (400, 422), (url, res.text)
            assert res.json()["field"] == "inputVideoUrl", (url, res.text)
            assert why in res.json()["message"], (url, res.text)
        assert list(api.manifests.iterdir()) == []  # nothing refused was declared
        # A bug (here: the resolver crashing) is a bare 500: no detail, no traceback.
        crash = client.post("/api/dubbing", json={
            "inputVideoUrl": "https://boom.example/v.mp4", "targetLanguages": ["en"],
            "curriculumSectionId": 59})
        assert crash.status_code == 500
        assert crash.json() == {"error": "internal", "message": "internal server error",
                                "field": None}
        # The control: an allowed public host passes the URL checks; it is then read (and,
        # there being no such video, refused as unreadable, not as a source).
        ok = client.post("/api/dubbing", json={
            "inputVideoUrl": "https://media.example.com/lectures/v.mp4",
            "targetLanguages": ["en"], "curriculumSectionId": 60})
        assert ok.status_code == 422 and ok.json()["error"] == "video_unreadable", ok.text


def test_auth_is_required_except_for_health(api, source):
    server = api(workers=0)
    with server.client(token=None) as anon:
        assert anon.get("/healthz").json() == {"ok": True,
                                               "manifests": {"valid": 0, "invalid": []}}
        assert anon.get("/openapi.json").status_code == 200
        for res in (anon.post("/api/dubbing", json=spec_body(source)),
                    anon.get("/api/sections/11"), anon.get("/api/dubbing/jobs/nope")):
            assert res.status_code == 401
            assert res.json()["error"] == "unauthorized"
            assert res.headers["www-authenticate"] == "Bearer"
    with server.client(token="wrong-" + TOKEN) as wrong:
        assert wrong.post("/api/dubbing", json=spec_body(source)).status_code == 401
    with httpx.Client(base_url=server.url, headers={"Authorization": TOKEN}) as bare:
        assert bare.get("/api/sections/11").status_code == 401  # scheme is required
    with server.client() as client:
        assert client.get("/api/sections/11").status_code == 404
        assert client.get("/api/dubbing/jobs/nope").json()["error"] == "not_found"
    assert list(api.manifests.iterdir()) == []

    config = ApiConfig(api.manifests, api.data, store_url="file:///tmp/x")
    with pytest.raises(ApiConfigError):
        create_app(config)  # no token, no explicit opt-out
    insecure = ApiConfig(api.manifests, api.data, insecure_no_auth=True)
    for host in ("127.0.0.1", "127.5.5.5", "::1", "localhost"):
        check_exposure(insecure, host)
    for host in ("0.0.0.0", "10.0.0.1", "::", "example.com"):
        with pytest.raises(ApiConfigError):
            check_exposure(insecure, host)
    with pytest.raises(ApiConfigError):
        check_exposure(config, "127.0.0.1")  # no token and no --insecure-no-auth


def test_conflicting_video_replace_video_and_request_limits(api, source, s3, clip):
    for key in ("lectures/a.mp4", "lectures/b.mp4"):
        s3.upload_file(str(clip), source, key)
    server = api(workers=0)
    manifest = api.manifests / "section-12.yaml"
    with server.client() as client:
        first = spec_body(source, 12, ["ko", "en"], "lectures/a.mp4")
        assert client.post("/api/dubbing", json=first).status_code == 202
        other = spec_body(source, 12, ["ja"], "lectures/b.mp4")
        res = client.post("/api/dubbing", json=other)
        assert res.status_code == 409 and res.json()["field"] == "inputVideoUrl", res.text
        assert "replaceVideo" in res.json()["message"]
        assert "lectures/a.mp4" in manifest.read_text()
        assert "ja" not in [lang["code"] for lang in yaml.safe_load(
            manifest.read_text())["languages"]]

        res = client.post("/api/dubbing", json={**other, "replaceVideo": True})
        assert res.status_code == 202, res.text
        doc = yaml.safe_load(manifest.read_text())
        assert doc["video"] == f"s3://{source}/lectures/b.mp4"
        assert [lang["code"] for lang in doc["languages"]] == ["ko", "en", "ja"]  # kept, added
        assert reconcile("validate", api.manifests).code == 0

        huge = {**first, "pad": "x" * 100_000}
        res = client.post("/api/dubbing", json=huge)
        assert res.status_code == 413 and res.json()["error"] == "body_too_large"
        chunked = client.post("/api/dubbing", content=iter([b"{" + b" " * 70_000, b"}"]),
                              headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413
        bad_json = client.post("/api/dubbing", content=b"{not json",
                               headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and bad_json.json()["error"] == "invalid_json"
        invalid = {
            "targetLanguages[1]": {**first, "targetLanguages": ["en", "xx-!!"]},
            "targetLanguages": {**first, "targetLanguages": ["en"] * 21},
            "curriculumSectionId": {**first, "curriculumSectionId": "12"},
        }
        for field, body in invalid.items():
            res = client.post("/api/dubbing", json=body)
            assert res.status_code == 422 and res.json()["field"] == field, (field, res.text)
            assert "Traceback" not in res.text
        assert client.post("/api/dubbing", json={**first, "curriculumSectionId": 0}
                           ).status_code == 422
        assert client.post("/api/dubbing", json={**first, "targetLanguages": ["zz-qq-1"]}
                           ).json()["field"] == "targetLanguages[0]"
        for wait in ("0", "901", "nan"):
            res = client.post("/api/dubbing", params={"wait": wait}, json=first)
            assert res.status_code == 422 and res.json()["field"] == "wait", (wait, res.text)
        assert client.get("/api/sections/999").status_code == 404
        section = client.get("/api/sections/12").json()
        assert [d["code"] for d in section["declaredLanguages"]] == ["ko", "en", "ja"]
        assert section["observedLanguages"] == []


def test_git_commit_records_each_change_in_the_manifests_repository(tmp_path, api, source):
    repo = api.manifests.parent
    (repo / ".git").rmdir()
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    server = api(workers=0, git_commit=True)
    with server.client() as client:
        assert client.post("/api/dubbing", json=spec_body(source, 11, ["ko", "en"])
                           ).status_code == 202
        assert client.post("/api/dubbing", json=spec_body(source, 11, ["en", "ja"])
                           ).status_code == 202
    log = subprocess.run([*git, "log", "--format=%an <%ae>|%s"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert log == ["reconciler-api <reconciler-api@localhost>|api: section 11: add ja",
                   "reconciler-api <reconciler-api@localhost>|api: section 11: add ko, en"]
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                            check=True).stdout
    assert status == ""
    files = subprocess.run([*git, "show", "--name-only", "--format=", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert files == ["manifests/section-11.yaml"]


HAND_WRITTEN = """\
# Lecture 11 - reviewed by the Korean team; ask Kim before changing the video.
sectionId: 11   # the LMS id

video: "{video}"  # re-encoded 2026-11
languages:
    # the original track
    -   code: 'ko'
        audio: source   # from the video
    -   code: en
        name: "English"   # reviewed
# ja was asked for by the Tokyo campus (ticket 881)

sourceLanguage: ko
"""


def test_adding_languages_keeps_a_hand_written_manifest_and_commits_only_the_new_lines(
    api, source
):
    """Issue 23 item 2: comments, key order, quoting, blank lines and the file's indentation
    survive; the commit's diff is exactly the new language entries."""
    repo = api.manifests.parent
    (repo / ".git").rmdir()
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    manifest = api.manifests / "section-11.yaml"
    before = HAND_WRITTEN.format(video=f"s3://{source}/lectures/11/source.mp4")
    manifest.write_text(before)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
                   check=True)
    server = api(workers=0, git_commit=True)
    with server.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 11, ["en", "ja", "fr"]))
        assert res.status_code == 202, res.text
    after = manifest.read_text()
    lines = before.splitlines(keepends=True)
    at = lines.index("        name: \"English\"   # reviewed\n") + 1
    assert after == "".join([*lines[:at], "    -   code: ja\n", "    -   code: fr\n",
                             *lines[at:]])
    diff = subprocess.run([*git, "show", "--format=", "--unified=0", "HEAD"],
                          capture_output=True, text=True, check=True).stdout
    changed = [line for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["+    -   code: ja", "+    -   code: fr"]
    assert reconcile("validate", api.manifests).code == 0

    with server.client() as client:  # replacing the video changes that one value, quoted
        res = client.post("/api/dubbing", json={
            **spec_body(source, 11, ["ko"], "lectures/clip.mp4"), "replaceVideo": True})
        assert res.status_code == 202, res.text
    replaced = manifest.read_text().splitlines()
    assert [line for line in replaced if line.startswith("video:")] == [
        f'video: "s3://{source}/lectures/clip.mp4"  # re-encoded 2026-11']
    assert [line for line in replaced if not line.startswith("video:")] == [
        line for line in after.splitlines() if not line.startswith("video:")]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout


def test_git_push_puts_each_change_on_the_remote_before_it_is_applied(tmp_path, api, source):
    """Issue 23 item 1: the remote (a local bare repository) gets a commit adding exactly the
    new languages, comments intact; a push rejected because a person pushed meanwhile is
    fetched, rebased and retried; a conflicting change fails the job and is undone locally."""
    remote, person = tmp_path / "remote.git", tmp_path / "person"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "clone", "-q", str(remote), str(person)], check=True)
    (person / "manifests").mkdir()
    before = HAND_WRITTEN.format(video=f"s3://{source}/lectures/11/source.mp4")
    (person / "manifests" / "section-11.yaml").write_text(before)
    _git(person, "add", ".")
    _git(person, "commit", "-qm", "section 11")
    _git(person, "push", "-q", "origin", "HEAD:main")
    repo = api.manifests.parent
    subprocess.run(["rm", "-r", str(repo)], check=True)
    subprocess.run(["git", "clone", "-q", str(remote), str(repo)], check=True)
    # The person pushes once more while the API pushes its first change: its push is rejected.
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text(f"""#!/bin/sh
[ -e "{tmp_path}/raced" ] && exit 0
touch "{tmp_path}/raced"
cd "{person}" && echo 'sectionId: 12' > manifests/notes.txt && git add . &&
git -c user.name=p -c user.email=p@p commit -qm 'a person' && git push -q origin HEAD:main
""")
    hook.chmod(0o755)
    server = api(workers=0, git_push="origin")
    with server.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 11, ["en", "ja", "fr"]))
        assert res.status_code == 202, res.text
        assert client.get(res.json()["statusUrl"]).json()["status"] == Status.QUEUED
    assert (tmp_path / "raced").exists()  # the first push met the person's
    log = _git(remote, "log", "--format=%s", "main").splitlines()
    assert log == ["api: section 11: add ja, fr", "a person", "section 11"]
    diff = _git(remote, "show", "--format=", "--unified=0", "main")
    assert [line for line in diff.splitlines() if line[:1] in "+-"
            and not line.startswith(("+++", "---"))] == ["+    -   code: ja", "+    -   code: fr"]
    on_remote = _git(remote, "show", "main:manifests/section-11.yaml")
    assert "# ja was asked for by the Tokyo campus (ticket 881)" in on_remote
    assert _git(repo, "rev-parse", "HEAD") == _git(remote, "rev-parse", "main")

    # A person changes the same lines: the API's change cannot rebase onto theirs.
    _git(person, "pull", "-q", "--rebase", "origin", "main")
    theirs = on_remote.replace("    -   code: fr\n", "    -   code: fr\n        name: French\n")
    (person / "manifests" / "section-11.yaml").write_text(theirs)
    _git(person, "commit", "-qam", "name French")
    hook.write_text(f"""#!/bin/sh
cd "{person}" && git push -q origin HEAD:main
""")
    with server.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 11, ["de"]))
        assert res.status_code == 202, res.text
        job = client.get(res.json()["statusUrl"]).json()
    assert job["status"] == Status.FAILED and job["ok"] is False
    assert job["languagesFailed"] == [{"code": "de", "reason": job["errors"][0]}]
    assert "section-11.yaml was changed on origin meanwhile" in job["errors"][0]
    assert "nothing was applied" in job["errors"][0] and str(tmp_path) not in str(job)
    assert _git(remote, "log", "-1", "--format=%s", "main").strip() == "name French"
    assert "code: de" not in (api.manifests / "section-11.yaml").read_text()
    assert _git(repo, "status", "--porcelain") == ""


def test_a_failed_git_commit_is_reported_in_the_job_not_only_logged(tmp_path, api, source):
    """Issue 12: the manifest is written (the request stands) but the job says it was not
    committed; the note survives into the stored job, not only the server log."""
    repo = api.manifests.parent
    (repo / ".git").rmdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'refused by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    server = api(workers=0, git_commit=True)
    with server.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source, 11, ["ko"]))
        assert res.status_code == 202, res.text
        job = client.get(res.json()["statusUrl"]).json()
    assert (api.manifests / "section-11.yaml").exists()
    assert job["status"] == Status.QUEUED and job["ok"] is False
    assert len(job["errors"]) == 1, job
    assert "section-11.yaml was written but not committed to git" in job["errors"][0]
    server.stop()
    stored = SqliteJobStore(api.data / "jobs.sqlite3").get(job["jobId"])
    assert stored is not None and stored.result == {"errors": job["errors"]}


def test_a_broken_manifest_sets_aside_only_its_section_and_is_reported_without_paths(
    api, source, s3, bucket, caplog
):
    """Issue 23 item 4: one invalid file made every POST 409 and showed the server's path."""
    (api.manifests / "team-b").mkdir()
    broken = {
        "team-b/broken.yaml": "sectionId: 70\nvideo: v.mp4\nlanguages: [{code: 'xx-!!'}]\n",
        "section-71.yaml": "sectionId: 71\nlanguages: []\n",  # no video
        "dup-a.yaml": "sectionId: 72\nvideo: a.mp4\nlanguages: [{code: en}]\n",
        "dup-b.yaml": "sectionId: 72\nvideo: b.mp4\nlanguages: [{code: en}]\n",
    }
    for name, text in broken.items():
        (api.manifests / name).write_text(text)
    server = api(workers=1)
    where = str(api.manifests.parent)  # no answer may name the server's folders
    with server.client() as client:
        res = client.post("/api/dubbing", params={"wait": 60},
                          json=spec_body(source, 33, ["en"], "lectures/clip.mp4"))
        assert res.status_code == 200, res.text
        assert res.json()["ok"] is True and res.json()["languagesReady"] == ["en"]
        assert master_languages(s3, bucket, 33) == ["en"]

        for sid, name in ((71, "section-71.yaml"), (72, "dup-a.yaml"), (70, "team-b/broken.yaml")):
            res = client.post("/api/dubbing", json=spec_body(source, sid, ["ja"]))
            assert res.status_code == 409, res.text
            assert res.json()["error"] == "manifest_invalid"
            assert f"the section's manifest is invalid: {name}" in res.json()["message"], res.text
            assert where not in res.text
            section = client.get(f"/api/sections/{sid}")
            assert section.status_code == 409 and where not in section.text
        assert (api.manifests / "section-71.yaml").read_text() == broken["section-71.yaml"]

        health = client.get("/healthz").json()
    assert where not in str(health)
    assert health["ok"] is True and health["manifests"]["valid"] == 1
    invalid = {entry["file"]: entry["problems"] for entry in health["manifests"]["invalid"]}
    assert sorted(invalid) == sorted(broken)
    assert invalid["dup-a.yaml"] == [
        "dup-a.yaml: sectionId: duplicate sectionId 72 (also in dup-b.yaml)"]
    assert any("xx-!!" in problem for problem in invalid["team-b/broken.yaml"])
    logged = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert sorted(m.split()[1] for m in logged) == sorted(
        str(api.manifests.resolve() / name) for name in broken)  # once each, full path


def test_an_alias_bomb_manifest_is_refused_not_expanded_nor_overwritten(api, source):
    """Issue 11: the API reads manifests with the same safe loader as the CLI (no anchors or
    aliases, 64 KiB cap), and never overwrites a manifest it could not read."""
    bomb = ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
            "sectionId: 11\nvideo: v.mp4\nlanguages: *f\n")
    manifest = api.manifests / "section-11.yaml"
    manifest.write_text(bomb)
    server = api(workers=0)
    with server.client() as client:
        res = client.post("/api/dubbing", json=spec_body(source))
    assert res.status_code == 409, res.text
    assert "anchors and aliases" in res.json()["message"] and len(res.text) < 1000
    assert manifest.read_text() == bomb


# -- strict JSON and slow clients ------------------------------------------------------------


def test_a_body_naming_a_key_twice_is_refused_naming_the_key(api, source):
    """Python's json keeps the last duplicate: section 11 then 12 would have acted on 12."""
    server = api(workers=0)
    with server.client() as client:
        body = (b'{"inputVideoUrl": "s3://%s/lectures/11/source.mp4", "targetLanguages": ["en"],'
                b' "curriculumSectionId": 11, "curriculumSectionId": 12}' % source.encode())
        res = client.post("/api/dubbing", content=body,
                          headers={"Content-Type": "application/json"})
        assert res.status_code == 422, res.text
        assert res.json() == {"error": "duplicate_key", "field": "curriculumSectionId",
                              "message": "the JSON body names 'curriculumSectionId' more than "
                                         "once"}
        nested = client.post("/api/dubbing", content=body.replace(
            b'"curriculumSectionId": 12', b'"x": {"a": 1, "a": 2}'),
            headers={"Content-Type": "application/json"})
        assert nested.status_code == 422 and nested.json()["field"] == "a", nested.text
        chunked = client.post("/api/dubbing", content=iter([body[:40], body[40:]]),
                              headers={"Content-Type": "application/json"})
        assert chunked.status_code == 422 and chunked.json()["error"] == "duplicate_key"
        assert list(api.manifests.iterdir()) == []  # nothing was declared
        once = client.post("/api/dubbing", content=body.replace(
            b', "curriculumSectionId": 12', b""), headers={"Content-Type": "application/json"})
        assert once.status_code == 202, once.text  # the control: the same body, one key once


def _raw(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's
    timeout: a server that never closes fails the test)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_clients_are_cut_off_and_connections_are_limited(api, source):
    limits = Limits(header_timeout=0.5, body_timeout=0.5, max_connections=3)
    server = api(workers=0, limits=limits)
    # Headers that never end: the server hangs up (no answer: there is no request yet).
    with _raw(server) as slow_headers:
        slow_headers.sendall(b"POST /api/dubbing HTTP/1.1\r\nHost: x\r\n")
        assert _read_all(slow_headers) == b""
    with _raw(server) as silent:  # connected, sent nothing
        assert _read_all(silent) == b""
    # A body that never ends: 408 and the connection closed.
    with _raw(server) as slow_body:
        slow_body.sendall(b"POST /api/dubbing HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        answer = _read_all(slow_body)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"error":"request_timeout"' in answer.replace(b" ", b"")
    assert list(api.manifests.iterdir()) == []
    # Three connections held open: the next request is refused at once, not queued...
    held = [_raw(server) for _ in range(3)]
    with server.client() as client:
        assert client.get("/api/sections/11").status_code == 503
    for sock in held:  # ...until the header deadline has dropped the idle ones
        with sock:
            assert _read_all(sock) == b""
    with server.client() as client:
        assert client.get("/api/sections/11").status_code == 404


# -- idempotency, callbacks, the job list, cancel, dry run -------------------------------------


class Receiver:
    """A webhook receiver on a loopback port: records every POST (raw body, headers) and
    answers the first `failures` of them 503."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((body, dict(self.headers)))
                self.send_response(503 if len(receiver.calls) <= receiver.failures else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/reconciler"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_delivery(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        webhook = client.get(f"/api/dubbing/jobs/{job_id}").json()["webhook"]
        if webhook and webhook["state"] != "pending":
            return webhook
        assert time.monotonic() < deadline, f"job {job_id}: webhook still {webhook}"
        time.sleep(0.05)


def test_a_retried_post_makes_one_job_one_dub_and_one_signed_callback(api, source, eleven):
    receiver = Receiver(failures=1)  # the first delivery meets a 503: retried
    secret = "whsec-" + uuid.uuid4().hex
    server = api(workers=1, webhook=Webhook(receiver.url, secret, first_wait=0.01,
                                            max_wait=0.05))
    body = spec_body(source, 34, ["en"], "lectures/clip.mp4")
    key = {"Idempotency-Key": "order-34-" + uuid.uuid4().hex}
    try:
        with server.client() as client:
            first = client.post("/api/dubbing", json=body, headers=key)
            assert first.status_code == 202, first.text
            job_id = first.json()["jobId"]
            reordered = json.dumps(dict(reversed(list(body.items()))))
            retry = client.post("/api/dubbing", content=reordered, headers={
                **key, "Content-Type": "application/json"})
            assert retry.status_code == 202 and retry.json()["jobId"] == job_id, retry.text
            done = wait_job(client, job_id)
            assert done["status"] == Status.SUCCEEDED and done["languagesReady"] == ["en"]
            late = client.post("/api/dubbing", json=body, headers=key)
            assert late.json()["jobId"] == job_id  # after the job ended, still that job
            other = client.post("/api/dubbing", json={**body, "targetLanguages": ["ja"]},
                                headers=key)
            assert other.status_code == 422, other.text
            assert other.json()["error"] == "idempotency_key_reused"
            assert other.json()["field"] == "Idempotency-Key"
            bad = client.post("/api/dubbing", json=body, headers={"Idempotency-Key": "a b"})
            assert bad.status_code == 422 and bad.json()["field"] == "Idempotency-Key"
            delivery = wait_delivery(client, job_id)
    finally:
        receiver.stop()
    assert job_rows(api.data) == 1
    assert [c["target_lang"] for c in eleven.creates] == ["en"]  # one paid dub
    assert "ja" not in (api.manifests / "section-34.yaml").read_text()
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2
    assert delivery["httpStatus"] == 200 and delivery["deliveredAt"]
    assert len(receiver.calls) == 2 and receiver.calls[0][0] == receiver.calls[1][0]
    raw, headers = receiver.calls[1]
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Reconciler-Signature"] == f"sha256={expected}"
    assert json.loads(raw) == {
        "jobId": job_id, "status": Status.SUCCEEDED, "sectionId": 34, "languagesReady": ["en"],
        "languagesFailed": [], "masterUrl": f"{CDN}/{PREFIX}/34/master.m3u8"}


def test_jobs_are_listed_by_section_and_status_and_a_queued_one_is_cancelled(api, source):
    server = api(workers=0)
    with server.client() as client:
        ids = [client.post("/api/dubbing", json=spec_body(source, sid, [lang])).json()["jobId"]
               for sid, lang in ((41, "en"), (42, "en"), (41, "ja"))]
        listed = client.get("/api/dubbing/jobs").json()["jobs"]
        assert [j["jobId"] for j in listed] == ids[::-1]  # newest first
        of_41 = client.get("/api/dubbing/jobs", params={"sectionId": 41}).json()["jobs"]
        assert [j["jobId"] for j in of_41] == [ids[2], ids[0]]
        assert client.get("/api/dubbing/jobs", params={"limit": 1}).json()["jobs"][0][
            "jobId"] == ids[2]

        cancelled = client.delete(f"/api/dubbing/jobs/{ids[0]}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finishedAt"]
        again = client.delete(f"/api/dubbing/jobs/{ids[0]}")
        assert again.status_code == 409 and again.json()["error"] == "job_not_queued"
        assert client.delete("/api/dubbing/jobs/nope").status_code == 404
        queued = client.get("/api/dubbing/jobs", params={"status": "queued"}).json()["jobs"]
        assert [j["jobId"] for j in queued] == [ids[2], ids[1]]
        gone = client.get("/api/dubbing/jobs", params={"status": "cancelled",
                                                       "sectionId": 41}).json()["jobs"]
        assert [j["jobId"] for j in gone] == [ids[0]]
        assert client.get("/api/dubbing/jobs", params={"status": "lost"}).status_code == 422
    server.stop()
    store = SqliteJobStore(api.data / "jobs.sqlite3")  # a cancelled job is never claimed
    assert [store.claim().id, store.claim().id, store.claim()] == [ids[1], ids[2], None]


def test_dry_run_answers_the_plan_and_billable_minutes_and_stores_nothing(
    api, source, media, eleven, s3, bucket
):
    server = api(workers=1)
    with server.client() as client:
        body = {**spec_body(source, 35, ["ko", "en", "ja"]), "sourceLanguage": "ko"}
        res = client.post("/api/dubbing", params={"dryRun": "true"}, json=body)
        assert res.status_code == 200, res.text
        plan = res.json()
    seconds = float(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(media / "lecture.mp4")], capture_output=True, text=True, check=True).stdout)
    assert plan["dryRun"] is True and plan["sectionId"] == 35
    assert plan["languagesToAdd"] == ["ko", "en", "ja"] and plan["videoReplaced"] is False
    assert plan["billableMinutes"] == pytest.approx(2 * seconds / 60, abs=0.01)  # en, ja
    assert sorted(a["language"] for a in plan["actions"] if a["type"] == "dub") == ["en", "ja"]
    assert plan["errors"] == [] and plan["unpricedLanguages"] == []
    assert list(api.manifests.iterdir()) == []
    assert job_rows(api.data) == 0
    assert eleven.creates == []
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/35/").get("KeyCount", 0) == 0
