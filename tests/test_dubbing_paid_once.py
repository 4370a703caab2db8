"""ElevenLabs as it really answers (issue 20), through the whole reconciler against the
contract-checking fake and moto: its own language codes, lost create answers, broken downloads,
terminal statuses and the concurrency limit, each asserting how many dubs were paid for."""

from __future__ import annotations

import json

import pytest
from cli_helpers import reconcile
from conftest import master_languages
from fake_elevenlabs import Clock

from reconciler import engine
from reconciler.dubbing.elevenlabs import ElevenLabs
from reconciler.progress import Tracker

KO = {"code": "ko", "audio": "source", "default": True}
KO_EN = [KO, {"code": "en"}]


class Said(Tracker):
    """The lines apply says (the heartbeat among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def say(self, section_id: int | None, message: str) -> None:
        self.lines.append(message)


def listing(s3, bucket, prefix=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for p in pages for o in p.get("Contents", [])]


def cached_dubs(s3, bucket, code="en"):
    return [k for k in listing(s3, bucket, f"dubbing-cache/11/{code}/")
            if k.endswith((".mp3", ".mp4")) and "-set-aside." not in k]


def test_bcp47_tags_are_sent_as_elevenlabs_codes_and_published_as_tags(repo, bucket, eleven, s3):
    repo.write(11, [KO, {"code": "pt-BR"}, {"code": "zh-Hans", "subtitles": "dub"}])
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert sorted(c["target_lang"] for c in eleven.creates) == ["pt", "zh"]
    zh = next(c["dubbing_id"] for c in eleven.creates if c["target_lang"] == "zh")
    assert ("GET", f"/v1/dubbing/{zh}/audio/zh") in eleven.requests
    assert ("GET", f"/v1/dubbing/{zh}/transcript/zh") in eleven.requests
    master = s3.get_object(Bucket=bucket, Key="assets/curriculumsection/11/master.m3u8")[
        "Body"].read().decode()
    assert 'NAME="Portuguese (Brazil)",LANGUAGE="pt-BR"' in master
    assert 'URI="audio/zh-Hans/audio.m3u8"' in master
    assert 'TYPE=SUBTITLES,GROUP-ID="subs",NAME="Chinese (Simplified)",LANGUAGE="zh-Hans"' in master
    assert master_languages(s3, bucket)[:3] == ["ko", "pt-BR", "zh-Hans"]
    assert listing(s3, bucket, "assets/curriculumsection/11/audio/pt-BR/")
    # the fixture fails the test on any request ElevenLabs would refuse (e.g. target_lang=pt-BR)


def test_validate_refuses_a_dubbed_language_elevenlabs_does_not_offer(repo, eleven):
    repo.write(11, [KO, {"code": "th"}, {"code": "he", "audio": "../media/en.mp3"}])
    res = reconcile("validate", repo.manifests)
    assert res.code == 1
    assert "languages[1].code: ElevenLabs does not dub 'th'" in res.stderr
    assert "ar, bg, cs, da, de, el, en, es, fi, fil, fr, hi" in res.stderr
    assert "'he'" not in res.stderr  # it has audio: nothing to dub
    assert eleven.requests == []


@pytest.mark.parametrize("fault", ["502", "drop"])
def test_a_create_accepted_but_unanswered_costs_exactly_one_dub(repo, bucket, eleven, s3, fault):
    """The gateway took the upload (the dub is paid) and answered 502, or the connection
    dropped: the dub is found by its name and adopted, never created again."""
    repo.write(11, KO_EN)
    eleven.busy_account = 450  # 450 newer dubs by others: ours is on the list's third page
    eleven.after_accept["en"] = [fault]
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert [q.get("cursor") for q in eleven.lists] == [None, "page-200", "page-400"]
    assert all(q.get("order_by") == "created_at" and q.get("order_direction") == "DESCENDING"
               and q.get("page_size") == "200" for q in eleven.lists)


def test_a_create_lost_before_acceptance_is_counted_against_the_cap(repo, bucket, eleven, s3):
    """A 502 that ElevenLabs never accepted: another create may bill again, so it is counted
    first, and refused over --max-dub-minutes; the name is looked up again next time."""
    repo.write(11, KO_EN)
    eleven.flaky_languages["en"] = [502]
    capped = reconcile("--apply", repo.manifests, "--max-dub-minutes", "0.15")  # plan: 0.08
    assert capped.code == 1
    assert "over --max-dub-minutes 0.15" in capped.stdout
    assert eleven.creates == []
    [record] = [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
                for k in listing(s3, bucket, "dubbing-cache/") if k.endswith(".job.json")]
    assert record["name"] and "dubbing_id" not in record

    assert reconcile("--apply", repo.manifests, "--max-dub-minutes", "0.15").code == 0
    assert len(eleven.creates) == 1
    assert eleven.creates[0]["name"] == record["name"]


@pytest.mark.parametrize("broken", ["empty", "silence", "long"])
def test_a_broken_download_is_not_cached_and_the_next_apply_downloads_it_unpaid(
    repo, bucket, eleven, s3, broken
):
    repo.write(11, KO_EN)
    eleven.broken_audio["en"] = [broken, broken]  # the download and its retry
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "en: dub: downloaded dub is not usable audio" in res.stdout, res.stdout
    assert cached_dubs(s3, bucket) == []
    assert master_languages(s3, bucket) == ["ko"]

    assert reconcile("--apply", repo.manifests).code == 0
    assert len(eleven.creates) == 1  # downloaded again from the same dub
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert len(cached_dubs(s3, bucket)) == 1


@pytest.mark.parametrize("broken", ["html", "random"])
def test_one_broken_download_is_fetched_again_in_the_same_apply(repo, bucket, eleven, s3,
                                                                broken):
    repo.write(11, KO_EN)
    eleven.broken_audio["en"] = [broken]
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_a_cached_dub_broken_later_is_set_aside_and_downloaded_again_unpaid(
    repo, bucket, eleven, s3
):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    [key] = cached_dubs(s3, bucket)
    head = s3.head_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key=key, Body=b"<html>not audio</html>",
                  Metadata=head["Metadata"])
    rendition = listing(s3, bucket, "assets/curriculumsection/11/audio/en/")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in rendition]})

    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert f"cached dub {key} is not usable audio; set aside as" in res.stdout, res.stdout
    assert f"downloads dub {eleven.creates[0]['dubbing_id']} again, unpaid" in res.stdout
    assert cached_dubs(s3, bucket) == []

    assert reconcile("--apply", repo.manifests).code == 0
    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_a_cancelled_dub_ends_that_language_at_once(repo, bucket, eleven, s3, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_POLL_TIMEOUT", "30")  # was waited out in full, every apply
    repo.write(11, KO_EN + [{"code": "ja"}])
    eleven.final_status["en"] = "cancelled"
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "en: dub: the dub was cancelled at ElevenLabs; the next apply dubs again" in res.stdout
    en = next(c["dubbing_id"] for c in eleven.creates if c["target_lang"] == "en")
    assert eleven.count("GET", f"/v1/dubbing/{en}") == eleven.steps_to_dub  # no poll after
    assert master_languages(s3, bucket) == ["ko", "ja"]


def test_a_language_refused_for_want_of_a_slot_is_dubbed_once_one_frees(
    repo, bucket, eleven, s3, tmp_path
):
    """429 concurrent_limit_exceeded for 45 s of a clock the test controls (no real wait):
    the create waits for a slot, says so, and is paid once."""
    clock = Clock()
    eleven.clock = clock
    eleven.no_slot_for["en"] = 45.0
    eleven.retry_after = 5
    client = ElevenLabs(eleven.api_key, eleven.base_url, poll_interval=0.05, clock=clock,
                        sleep=clock.sleep)
    said = Said()
    rec = engine.Reconciler(engine.Settings(store_url=f"s3://{bucket}", tmp_dir=tmp_path),
                            dubber=lambda: client, tracker=said)
    repo.write(11, KO_EN)
    outcome = rec.apply(engine.load([repo.manifests]))
    client.close()
    assert outcome.ok, outcome
    assert len(eleven.creates) == 1
    refused = [r for r in eleven.responses if r == ("POST", "/v1/dubbing", 429)]
    assert len(refused) == 9  # 45 s of refusals, 5 s apart
    assert clock.now >= 45
    assert any("all ElevenLabs dubbing slots are busy" in line for line in said.lines), said.lines
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_a_create_answered_after_the_read_timeout_costs_one_dub(repo, bucket, eleven, s3,
                                                                  tmp_path):
    """The upload is accepted but the answer comes after the client's read timeout."""
    client = ElevenLabs(eleven.api_key, eleven.base_url, poll_interval=0.05, timeout=2.0)
    eleven.stall_seconds = 4.0
    eleven.after_accept["en"] = ["stall"]
    rec = engine.Reconciler(engine.Settings(store_url=f"s3://{bucket}", tmp_dir=tmp_path),
                            dubber=lambda: client)
    repo.write(11, KO_EN)
    outcome = rec.apply(engine.load([repo.manifests]))
    client.close()
    assert outcome.ok, outcome
    assert len(eleven.creates) == 1
    assert eleven.count("POST", "/v1/dubbing") == 1
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_an_unknown_status_ends_the_language_and_the_next_apply_resumes_it_unpaid(
    repo, bucket, eleven, s3, monkeypatch
):
    monkeypatch.setenv("ELEVENLABS_POLL_TIMEOUT", "20")  # was waited out in full, every apply
    repo.write(11, KO_EN)
    eleven.final_status["en"] = "on_hold"
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "en: dub: ElevenLabs reports status 'on_hold'" in res.stdout, res.stdout
    assert "the dub is kept and the next apply resumes it unpaid" in res.stdout

    eleven.final_status.clear()  # ElevenLabs finishes it after all
    plan = reconcile("--plan", repo.manifests)
    assert f"resume dub {eleven.creates[0]['dubbing_id']}" in plan.stdout
    assert reconcile("--apply", repo.manifests, "--max-dub-minutes", "0").code == 0
    assert len(eleven.creates) == 1
    assert master_languages(s3, bucket) == ["ko", "en"]
