"""The verbs a Terraform user types (`plan`, `apply`, `show`; -v, --log-format json) and the
checks made before anything is spent or written (issue 22, items 5 and 7), through the CLI
on the local store and on moto."""

from __future__ import annotations

import io
import json
import logging
import subprocess

from cli_helpers import reconcile, store_listing
from conftest import KO_EN, Repo

from reconciler import logs


def test_plan_and_apply_subcommands_exit_as_the_flags_do(repo, tmp_path):
    store = f"file://{tmp_path / 'store'}"
    repo.write(11, KO_EN)
    flag, verb = (reconcile("--plan", repo.manifests, "--store", store),
                  reconcile("plan", repo.manifests, "--store", store))
    assert (flag.code, verb.code) == (2, 2)
    assert verb.stdout == flag.stdout
    saved = tmp_path / "plan.json"
    assert reconcile("plan", repo.manifests, "--store", store, "--out", saved).code == 2
    assert reconcile("show", saved).stdout == flag.stdout
    assert reconcile("apply", saved).code == 0
    flag, verb = (reconcile("--plan", repo.manifests, "--store", store),
                  reconcile("plan", repo.manifests, "--store", store))
    assert (flag.code, verb.code) == (0, 0)
    assert reconcile("apply", repo.manifests, "--store", store).code == 0
    assert reconcile("--apply", repo.manifests, "--store", store).code == 0
    # A bad manifest: exit 1 from both spellings.
    repo.write(12, [{"code": "ko", "audio": "../media/missing.mp3"}])
    assert reconcile("apply", repo.manifests, "--store", store).code == 1
    assert reconcile("--apply", repo.manifests, "--store", store).code == 1


def test_plan_and_apply_together_is_a_usage_error_that_writes_nothing(repo, tmp_path):
    store = tmp_path / "store"
    repo.write(11, KO_EN)
    for order in (("--plan", "--apply"), ("--apply", "--plan")):
        res = reconcile(*order, repo.manifests, "--store", f"file://{store}")
        assert res.code == 1, res.stderr
        assert "--plan and --apply cannot be used together" in res.stderr
        assert res.stdout == ""
    assert not store.exists() or store_listing(f"file://{store}") == {}


def test_verbose_json_logs_every_request_and_command_redacted(repo, bucket):
    """-vv --log-format json: every stderr line is one JSON object; S3 requests and ffmpeg
    command lines are there; the AWS secret key (conftest's marker) is not."""
    repo.write(11, KO_EN)
    res = reconcile("-vv", "--log-format", "json", "apply", repo.manifests)
    assert res.code == 0, res.stderr
    records = [json.loads(line) for line in res.stderr.splitlines()]
    messages = [r["message"] for r in records]
    assert any(m.startswith("s3 PutObject Bucket=" + bucket) and "-> 200" in m
               for m in messages), messages[:5]
    assert any(m.startswith("run: ffmpeg ") and "-f hls" in m for m in messages)
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error"}
    assert "test-secret-marker-value" not in res.stderr
    quiet = reconcile("plan", repo.manifests)  # without the options, nothing is logged
    assert quiet.code == 0 and quiet.stderr == ""


def test_log_lines_are_redacted(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_live_marker")
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", "whsec-marker")
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    try:
        logging.getLogger("reconciler.test").info(
            "key %s at https://user:pw@host/x?X-Amz-Signature=abc, signed with %s",
            "SK_LIVE_MARKER", "whsec-marker")
        logging.getLogger("botocore.endpoint").info("signed headers")  # not followed
    finally:
        logs.unconfigure()
    line = stream.getvalue()
    assert "[redacted]" in line and "marker" not in line.lower()
    assert "pw" not in line and "abc" not in line
    assert "signed headers" not in line


def test_a_dub_planned_without_a_key_writes_nothing(repo, bucket, monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    repo.write(11, [*KO_EN, {"code": "ja"}])
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "1 dub(s) planned (11/ja), but ELEVENLABS_API_KEY is not set" in res.stderr
    assert store_listing(f"s3://{bucket}") == {}  # not a segment, not a lock


def test_a_wrong_bucket_is_one_error(repo, moto_server):
    for sid in (11, 12, 13):
        repo.write(sid, KO_EN)
    res = reconcile("--plan", repo.manifests, "--store", "s3://no-such-bucket-i22")
    assert res.code == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: store s3://no-such-bucket-i22 cannot be read")


def test_country_codes_get_the_language_meant(repo):
    repo.write(11, [{"code": "ko", "audio": "source"}, {"code": "kr", "audio": "../media/en.mp3"},
                    {"code": "jp", "audio": "../media/ja.m4a"}])
    res = reconcile("validate", repo.manifests)
    assert res.code == 1
    assert "kr is Kanuri — did you mean ko (Korean)?" in res.stderr
    assert "jp is not a language code (JP is a country) — did you mean ja (Japanese)?" \
        in res.stderr
    # An explicit name says the real language is meant.
    repo.write(11, [{"code": "ko", "audio": "source"},
                    {"code": "kr", "name": "Kanuri", "audio": "../media/en.mp3"}])
    assert reconcile("validate", repo.manifests).code == 0


def test_default_manifests_are_found_from_a_subfolder_of_the_repository(
        tmp_path, media, monkeypatch):
    repo = Repo(tmp_path / "repo", media)
    (repo.root / ".git").rmdir()
    subprocess.run(["git", "init", "-q", str(repo.root)], check=True)
    repo.write(11, KO_EN)
    deep = repo.root / "docs" / "notes"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    res = reconcile("validate")
    assert res.code == 0, res.stderr
    assert "1 manifest(s) valid: sections 11" in res.stdout
    assert reconcile("plan", "--store", f"file://{tmp_path / 'store'}").code == 2
    # Outside any repository the default stays ./manifests (and says so when missing).
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    missing = reconcile("validate")
    assert missing.code == 1 and "manifests" in missing.stderr


def test_help_lists_the_verbs():
    out = reconcile("--help").stdout
    for verb in ("plan", "apply", "show"):
        assert f"  {verb} " in out
