"""Dubbing through the whole reconciler, against the fake ElevenLabs server and moto: paid
once, resumed after a crash, isolated per language, loudness-matched, spend shown and capped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import reconcile
from conftest import expire_dead_lease, master_languages

from reconciler.packager import LOUDNESS_I, LOUDNESS_TP
from reconciler.packager.ffmpeg import loudness

PREFIX = "assets/curriculumsection"
LANGS = [
    {"code": "ko", "audio": "source", "default": True},
    {"code": "en"},
    {"code": "ja"},
]


def listing(s3, bucket, prefix=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o for p in pages for o in p.get("Contents", [])}


def test_plan_shows_billable_minutes_and_max_dub_minutes_refuses_before_any_request(
    repo, bucket, eleven
):
    repo.write(11, LANGS)
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 2
    assert "+ dub en  (no audio given: dub with ElevenLabs; 0.08 billable min)" in plan.stdout
    assert "Dubbing: 0.17 billable minutes." in plan.stdout
    doc = reconcile("--plan", repo.manifests, "--format", "json").json()
    assert doc["summary"]["dubMinutes"] == pytest.approx(0.17, abs=0.01)

    refused = reconcile("--apply", repo.manifests, "--max-dub-minutes", "0.15")
    assert refused.code == 1
    assert "over --max-dub-minutes 0.15" in refused.stderr
    assert eleven.requests == []


def test_three_languages_converge_in_one_apply_and_the_next_apply_calls_nothing(
    repo, bucket, eleven, s3, media
):
    repo.write(11, LANGS)
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "ja"]
    for create in eleven.creates:
        assert create["source_lang"] == "auto"
        # Only the extracted speech is sent, never the video.
        assert create["file_size"] < (media / "lecture.mp4").stat().st_size / 2
        assert create["file_content_type"].startswith("audio/")
    assert master_languages(s3, bucket) == ["ko", "en", "ja"]
    cached = [k for k in listing(s3, bucket, "dubbing-cache/11/") if not k.endswith(".json")]
    assert len(cached) == 2  # the paid dubs are kept

    seen = len(eleven.requests)
    assert reconcile("--apply", repo.manifests).code == 0
    assert reconcile("--plan", repo.manifests).code == 0
    assert len(eleven.requests) == seen  # no API call at all


def apply_refused(repo, s3, bucket, refusals: dict[str, str], language: str,
                  message: str) -> None:
    """Apply the three languages while ElevenLabs refuses `language` with `message` (put in
    `refusals`, one of the fake's tables): the apply names it, exits 1, publishes the others."""
    repo.write(11, LANGS)
    refusals[language] = message
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert f"{language}: dub: {message}" in res.stdout
    assert master_languages(s3, bucket) == [lang["code"] for lang in LANGS
                                            if lang["code"] != language]


def test_failing_language_is_reported_others_publish_and_next_apply_dubs_only_it(
    repo, bucket, eleven, s3
):
    apply_refused(repo, s3, bucket, eleven.fail_languages, "ja",
                  "The voice could not be cloned (quota exceeded)")

    eleven.fail_languages.clear()
    before = [c["target_lang"] for c in eleven.creates]
    assert reconcile("--apply", repo.manifests).code == 0
    assert [c["target_lang"] for c in eleven.creates][len(before):] == ["ja"]
    assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "ja", "ja"]  # ja: failed once
    assert master_languages(s3, bucket) == ["ko", "en", "ja"]


def test_rejected_language_gives_the_apis_message(repo, bucket, eleven, s3):
    apply_refused(repo, s3, bucket, eleven.reject_languages, "en",
                  "Language en is not supported for this source")
    assert [c["target_lang"] for c in eleven.creates] == ["ja"]  # a rejected create is not paid


def test_killed_apply_resumes_the_dub_in_progress_instead_of_paying_again(
    repo, bucket, eleven, s3
):
    eleven.steps_to_dub = 60  # ~3 s of polling: a window to kill the apply in
    repo.write(11, [{"code": "ko", "audio": "source"}, {"code": "en"}])
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "--apply", "--lock-ttl",
                             "6", str(repo.manifests)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not eleven.creates:  # the dub is paid for; ElevenLabs is working on it
        assert time.monotonic() < deadline and proc.poll() is None, "no dub was created"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(eleven.creates) == 1
    expire_dead_lease(s3, bucket, proc.pid)  # rather than wait out its 6 s

    eleven.steps_to_dub = 2
    plan = reconcile("--plan", repo.manifests)
    assert f"resume dub {eleven.creates[0]['dubbing_id']} an earlier run started" in plan.stdout
    assert reconcile("--apply", repo.manifests).code == 0
    assert len(eleven.creates) == 1  # resumed by dubbing_id, not created again
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_dub_answered_as_mp4_is_used_and_all_renditions_are_loudness_matched(
    repo, bucket, eleven, s3, tmp_path
):
    eleven.audio_format = "mp4"
    repo.write(11, LANGS + [{"code": "de", "audio": "../media/en.mp3"}])
    assert reconcile("--apply", repo.manifests).code == 0
    assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "ja"]
    for code in ("ko", "en", "ja", "de"):
        objs = sorted(k for k in listing(s3, bucket, f"{PREFIX}/11/audio/{code}/")
                      if k.endswith((".mp4", ".m4s")))
        joined = tmp_path / f"{code}.mp4"
        with joined.open("wb") as fh:
            for key in [k for k in objs if k.endswith("init.mp4")] + [
                    k for k in objs if k.endswith(".m4s")]:
                fh.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        lufs, peak = loudness(joined)
        assert abs(lufs - LOUDNESS_I) <= 0.5, (code, lufs)
        assert peak <= LOUDNESS_TP, (code, peak)


def test_dubbing_without_a_key_stops_the_apply_before_anything_is_published(
        repo, bucket, monkeypatch, s3):
    """Issue 22 item 7: checked before the first write (tests/test_cli_verbs.py lists the
    bucket), not after the section's other languages are published."""
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    repo.write(11, [{"code": "ko", "audio": "source"}, {"code": "en"}])
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "(11/en), but ELEVENLABS_API_KEY is not set" in res.stderr
    assert master_languages(s3, bucket) == []


def test_api_key_never_printed(repo, bucket, eleven):
    repo.write(11, LANGS)
    eleven.fail_languages["en"] = "boom"
    outputs = [reconcile("--plan", repo.manifests), reconcile("--apply", repo.manifests),
               reconcile("--apply", repo.manifests, "--format", "json")]
    # en fails at ElevenLabs each time (paid each time: a failed dub is over); ja once.
    assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "en", "ja"]
    for out in outputs:
        assert eleven.api_key not in out.stdout + out.stderr
        assert "test-secret-marker-value" not in out.stdout + out.stderr
        assert "AKIATESTMARKERKEY123" not in out.stdout + out.stderr




def job_records(s3, bucket) -> dict[str, dict]:
    import json

    return {k: json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
            for k in listing(s3, bucket, "dubbing-cache/") if k.endswith(".job.json")}


KO_DUB_EN = [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}]


@pytest.mark.parametrize("how", ["poll timeout", "network errors"])
def test_dub_still_working_when_the_apply_gives_up_is_resumed_not_paid_twice(
    repo, bucket, eleven, s3, monkeypatch, how
):
    """A slow dub (or one ElevenLabs cannot be asked about) is still paid for and working:
    its record is kept, the next apply resumes polling it, unpaid and under a zero cap."""
    repo.write(11, KO_DUB_EN)
    if how == "poll timeout":
        monkeypatch.setenv("ELEVENLABS_POLL_TIMEOUT", "0.5")
        eleven.steps_by_lang["en"] = 10_000  # stays `dubbing` far longer than 0.5 s
        said = "en: dub: dub still 'dubbing' after 0.5s of polling"
    else:
        eleven.retry_after = 0
        eleven.flaky_languages["en"] = [0] + [429] * 6  # the create passes; every poll fails
        said = "en: dub: You have exceeded the rate limit."
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert said in res.stdout and "the next apply resumes it unpaid" in res.stdout, res.stdout
    assert master_languages(s3, bucket) == ["ko"]
    [record] = job_records(s3, bucket).values()
    assert record["dubbing_id"] == eleven.creates[0]["dubbing_id"]

    eleven.steps_by_lang.clear()  # ElevenLabs finishes
    plan = reconcile("--plan", repo.manifests)
    assert f"+ dub en  (resume dub {record['dubbing_id']} an earlier run started; " \
        "0.00 billable min)" in plan.stdout
    res = reconcile("--apply", repo.manifests, "--max-dub-minutes", "0")
    assert res.code == 0, res.stdout + res.stderr
    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert job_records(s3, bucket) == {}


def test_failed_dub_is_forgotten_and_paid_again_only_when_elevenlabs_says_failed(
    repo, bucket, eleven, s3
):
    repo.write(11, KO_DUB_EN)
    eleven.fail_languages["en"] = "voice clone failed"
    assert reconcile("--apply", repo.manifests).code == 1
    assert job_records(s3, bucket) == {}  # over at ElevenLabs: the next apply creates anew
    eleven.fail_languages.clear()
    assert "no audio given" in reconcile("--plan", repo.manifests).stdout
    assert reconcile("--apply", repo.manifests).code == 0
    assert len(eleven.creates) == 2


def test_failed_create_is_billed_in_full_and_capped_not_resumed_for_free(
    repo, bucket, eleven, s3
):
    repo.write(11, KO_DUB_EN)
    eleven.retry_after = 0
    eleven.flaky_languages["en"] = [429] * 6  # the create runs out of retries
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1 and eleven.creates == []
    [record] = job_records(s3, bucket).values()
    assert record["name"] and "dubbing_id" not in record

    plan = reconcile("--plan", repo.manifests)
    assert "+ dub en  (an earlier create left no dub id: dub again; 0.08 billable min)" \
        in plan.stdout
    assert "Dubbing: 0.08 billable minutes." in plan.stdout
    refused = reconcile("--apply", repo.manifests, "--max-dub-minutes", "0")
    assert refused.code == 1 and "over --max-dub-minutes 0" in refused.stderr
    assert eleven.creates == []
    assert reconcile("--apply", repo.manifests).code == 0
    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_record_without_id_whose_name_elevenlabs_knows_is_resumed_unpaid(
    repo, bucket, eleven, s3, media
):
    """The create went through but its answer was lost: the record names the dub, ElevenLabs
    lists that name, so the plan resumes it at 0 minutes and nothing is paid again."""
    from reconciler.dubbing.elevenlabs import ElevenLabs

    repo.write(11, KO_DUB_EN)
    eleven.retry_after = 0
    eleven.flaky_languages["en"] = [429] * 6
    assert reconcile("--apply", repo.manifests).code == 1
    [record] = job_records(s3, bucket).values()
    with ElevenLabs(eleven.api_key, eleven.base_url) as client:  # the lost create's dub
        lost = client.create(media / "en.mp3", target_lang="en", name=record["name"])
    plan = reconcile("--plan", repo.manifests)
    assert f"+ dub en  (resume dub {lost} an earlier run started; 0.00 billable min)" \
        in plan.stdout
    res = reconcile("--apply", repo.manifests, "--max-dub-minutes", "0")
    assert res.code == 0, res.stdout + res.stderr
    assert [c["dubbing_id"] for c in eleven.creates] == [lost]


def test_unknown_video_duration_is_a_plan_error_and_the_cap_refuses(repo, bucket, eleven):
    (repo.root / "media" / "unreadable.mp4").write_bytes(b"not a video at all" * 100)
    repo.write(11, KO_DUB_EN, video="../media/unreadable.mp4")
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 1
    assert "! error: en: dub: billable minutes unknown (the video's duration cannot be read)" \
        in plan.stdout
    refused = reconcile("--apply", repo.manifests, "--max-dub-minutes", "100")
    assert refused.code == 1
    assert "billable dubbing minutes unknown for section 11: en" in refused.stderr
    assert eleven.requests == []


def test_flaky_and_failing_languages_are_isolated_and_each_dub_is_paid_once(
    repo, bucket, eleven, s3
):
    repo.write(11, LANGS + [{"code": "de"}])
    eleven.retry_after = 0
    eleven.flaky_languages["en"] = [503, 429, 0, 500]  # create retried; a poll retried
    eleven.steps_by_lang["ja"] = 8  # slower than the others
    eleven.fail_languages["de"] = "voice clone failed"
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1 and "de: dub: voice clone failed" in res.stdout
    assert master_languages(s3, bucket) == ["ko", "en", "ja"]
    assert sorted(c["target_lang"] for c in eleven.creates) == ["de", "en", "ja"]


@pytest.mark.parametrize("github", [False, True])
def test_long_dub_prints_heartbeats_whatever_the_terminal_and_groups_sections_in_actions(
    repo, bucket, eleven, s3, monkeypatch, github
):
    """Not a terminal (CliRunner's stderr), CI set: heartbeats still come, with the dub's status
    and elapsed time and the section's upload count; under GitHub Actions the section's step
    lines are one ::group::."""
    import re

    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("RECONCILER_HEARTBEAT_SECONDS", "0.2")  # 30 by default
    if github:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
    else:
        monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    eleven.steps_by_lang["en"] = 40  # about 2 s of polling at 0.05 s
    repo.write(11, KO_DUB_EN)
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert len(eleven.creates) == 1
    err = res.stderr
    assert re.search(r"^section 11: dubbing en — \d+%, 0m0\ds elapsed, ETA 0m0\ds, "
                     r"status (preparing|dubbing)$", err, re.M), err
    assert re.search(r"^section 11: uploaded \d+/\d+ objects, \d+\.\d/\d+\.\d MiB — \d+%, ",
                     err, re.M), err
    grouped = re.search(r"^::group::section 11\n(.*?)^::endgroup::$", err, re.M | re.S)
    if github:
        assert grouped, err
        assert "section 11: packaging video" in grouped.group(1)
        assert re.search(r"^section 11: done: \d+ object\(s\) uploaded$", grouped.group(1), re.M)
    else:
        assert grouped is None  # no terminal: beats only, no step lines
        assert not re.search(r"^(… )?section 11: packaging video$", err, re.M), err
