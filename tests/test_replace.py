"""`reconcile apply --replace S/ja|S/video|S/subtitles/LANG` (issue 22, item 2), through the CLI
on moto and the contract-checking fake ElevenLabs: the plan shows a replacement (`-/+`,
"replace requested") with its billable minutes under the cap; exactly one new dub is paid and
takes the cached one's place; saved plans carry the replacement; unknown targets are refused."""

from __future__ import annotations

from cli_helpers import reconcile
from conftest import master_languages

from reconciler import layout
from reconciler.plan import REPLACE_REASON

PREFIX = "assets/curriculumsection/11"
KO_JA = [{"code": "ko", "audio": "source", "default": True}, {"code": "ja"}]


def etags(s3, bucket: str, prefix: str) -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["ETag"] for p in pages for o in p.get("Contents", [])}


def cached_dub(s3, bucket: str) -> tuple[str, str]:
    """(key, dubbing-id) of section 11's one cached ja dub."""
    [key] = [k for k in etags(s3, bucket, layout.dub_cache_prefix(11) + "ja/")
             if not k.endswith((".json", ".vtt"))]
    return key, s3.head_object(Bucket=bucket, Key=key)["Metadata"]["dubbing-id"]


def by_type(doc: dict) -> dict[str, dict]:
    [section] = [s for s in doc["sections"] if s["sectionId"] == 11]
    return {f"{a['type']} {a['language']}": a for a in section["actions"]}


def test_replace_of_a_dubbed_language_pays_exactly_one_new_dub_and_republishes_it(
        repo, bucket, s3, eleven):
    repo.write(11, KO_JA)
    assert reconcile("apply", repo.manifests).code == 0
    assert [c["target_lang"] for c in eleven.creates] == ["ja"]
    old_key, old_id = cached_dub(s3, bucket)
    ja_before = etags(s3, bucket, f"{PREFIX}/audio/ja/")
    ko_before = etags(s3, bucket, f"{PREFIX}/audio/ko/")

    plan = reconcile("plan", repo.manifests, "--replace", "11/ja")
    assert plan.code == 2, plan.stdout + plan.stderr
    assert f"-/+ dub ja  ({REPLACE_REASON}: a new dub replaces the cached one once verified; " \
           "0.08 billable min)" in plan.stdout
    assert f"-/+ package audio ja  ({REPLACE_REASON})" in plan.stdout
    assert "to replace. Dubbing: 0.08 billable minutes." in plan.stdout
    doc = reconcile("plan", repo.manifests, "--replace", "11/ja", "--format", "json").json()
    actions = by_type(doc)
    assert actions["dub ja"]["change"] == "replace" and actions["dub ja"]["minutes"] > 0
    assert actions["package_audio ja"]["change"] == "replace"
    assert "package_audio ko" not in actions and "package_video None" not in actions
    assert doc["options"]["replace"] == ["11/ja"]
    assert f"/{PREFIX}/audio/ja/*" in doc["invalidationPaths"]

    # Counted under the cap; without a terminal only with --auto-approve (as destroy).
    capped = reconcile("apply", repo.manifests, "--replace", "11/ja", "--auto-approve",
                       "--max-dub-minutes", "0.05")
    assert capped.code == 1 and "over --max-dub-minutes 0.05" in capped.stderr
    unasked = reconcile("apply", repo.manifests, "--replace", "11/ja")
    assert unasked.code == 1 and "--auto-approve" in unasked.stderr
    assert len(eleven.creates) == 1 and etags(s3, bucket, f"{PREFIX}/audio/ja/") == ja_before

    eleven.tone_hz_by_lang["ja"] = 660  # the new dub sounds otherwise: its segments differ
    done = reconcile("apply", repo.manifests, "--replace", "11/ja", "--auto-approve",
                     "--max-dub-minutes", "0.2")
    assert done.code == 0, done.stdout + done.stderr
    assert [c["target_lang"] for c in eleven.creates] == ["ja", "ja"]  # exactly one new dub
    new_key, new_id = cached_dub(s3, bucket)  # the one cached dub is the new one
    assert new_id == eleven.creates[1]["dubbing_id"] != old_id and new_key == old_key
    assert not [k for k in etags(s3, bucket, layout.dub_cache_prefix(11)) if
                k.endswith(layout.JOB_SUFFIX)]  # no job record left to resume
    ja_after = etags(s3, bucket, f"{PREFIX}/audio/ja/")
    assert ja_after.keys() == ja_before.keys() and ja_after != ja_before  # republished
    assert etags(s3, bucket, f"{PREFIX}/audio/ko/") == ko_before  # nothing else touched
    assert master_languages(s3, bucket) == ["ko", "ja"]

    assert reconcile("plan", repo.manifests).code == 0  # converged: the next plan is empty
    assert reconcile("apply", repo.manifests).code == 0
    assert len(eleven.creates) == 2


def test_a_saved_plan_carries_the_replacement(repo, bucket, s3, eleven, tmp_path):
    repo.write(11, KO_JA)
    assert reconcile("apply", repo.manifests).code == 0
    saved = tmp_path / "plan.json"
    made = reconcile("plan", repo.manifests, "--replace", "11/JA", "--out", saved)
    assert made.code == 2, made.stderr
    shown = reconcile("show", saved)
    assert "-/+ dub ja" in shown.stdout
    again = reconcile("apply", saved, "--replace", "11/ja")
    assert again.code == 1 and "a saved plan already fixes" in again.stderr
    applied = reconcile("apply", saved)  # reviewed: no --auto-approve needed
    assert applied.code == 0, applied.stdout + applied.stderr
    assert [c["target_lang"] for c in eleven.creates] == ["ja", "ja"]
    assert cached_dub(s3, bucket)[1] == eleven.creates[1]["dubbing_id"]


def test_replace_of_the_video_repackages_every_language_and_writes_master_once(
        repo, bucket, s3, eleven):
    repo.write(11, [*KO_JA, {"code": "en", "audio": "../media/en.mp3", "fit": "trim"}])
    assert reconcile("apply", repo.manifests).code == 0
    before = etags(s3, bucket, PREFIX)
    doc = reconcile("plan", repo.manifests, "--replace", "11/video", "--format", "json").json()
    actions = by_type(doc)
    assert actions["package_video None"]["reason"] == REPLACE_REASON
    assert {k: a["change"] for k, a in actions.items() if k.startswith("package_audio")} == {
        "package_audio ko": "replace", "package_audio ja": "replace",
        "package_audio en": "replace"}
    assert "dub ja" not in actions  # the video is the same: its dub is reused, unpaid
    assert [k for k in actions if k.startswith("write_master")] == ["write_master None"]

    done = reconcile("apply", repo.manifests, "--replace", "11/video", "--auto-approve",
                     "--format", "json")
    assert done.code == 0, done.stdout + done.stderr
    assert len(eleven.creates) == 1
    [result] = done.json()["sections"]
    rebuilt = [k for k in etags(s3, bucket, PREFIX) if k.startswith(
        (f"{PREFIX}/video/", f"{PREFIX}/audio/"))]
    # Every object of the video and of each language rewritten; master (the same text: the
    # same media) left as it is.
    assert result["uploaded"] == len(rebuilt) > 0 and not result["masterWritten"]
    assert etags(s3, bucket, PREFIX).keys() == before.keys()
    assert reconcile("plan", repo.manifests).code == 0


def test_replace_of_something_the_manifests_do_not_declare_is_a_usage_error(
        repo, bucket, s3):
    repo.write(11, [{"code": "ko", "audio": "source"}])
    for target, named in (("11/fr", "declares no language 'fr'"),
                          ("12/ko", "section 12 is not among the sections planned"),
                          ("11/subtitles/ko", "declares no subtitles for ko"),
                          ("eleven/ko", "not SECTION/video")):
        res = reconcile("plan", repo.manifests, "--replace", target)
        assert res.code == 1, (target, res.stdout)
        assert f"--replace {target}: " in res.stderr and named in res.stderr, res.stderr
    assert etags(s3, bucket, "") == {}  # nothing read into being, nothing written


def test_on_a_terminal_a_replace_is_asked_for_unless_auto_approved(repo, tmp_path, eleven):
    from test_cli_terminal import on_terminal

    from reconciler.cli import APPROVE_PROMPT

    repo.write(11, KO_JA)
    store = f"file://{tmp_path / 'store'}"
    assert reconcile("apply", repo.manifests, "--store", store).code == 0
    args = ["apply", str(repo.manifests), "--store", store, "--replace", "11/ja"]
    code, shown = on_terminal(args, answer="no", NO_COLOR="1")
    assert code == 1 and APPROVE_PROMPT in shown and "-/+ dub ja" in shown, shown
    assert len(eleven.creates) == 1  # nothing paid
    code, shown = on_terminal([*args, "--auto-approve"], NO_COLOR="1")
    assert code == 0 and APPROVE_PROMPT not in shown, shown
    assert [c["target_lang"] for c in eleven.creates] == ["ja", "ja"]


def test_replace_of_subtitles_recuts_only_them(repo, bucket, s3):
    from test_subtitles import SRT

    (repo.root / "media" / "ko.srt").write_text(SRT, encoding="utf-8")
    repo.write(11, [{**KO_JA[0], "subtitles": "../media/ko.srt"}])
    assert reconcile("apply", repo.manifests).code == 0
    doc = reconcile("plan", repo.manifests, "--replace", "11/subtitles/ko", "--format",
                    "json").json()
    assert [(a["type"], a["change"], a["language"]) for a in doc["sections"][0]["actions"]] == [
        ("package_subtitles", "replace", "ko"), ("write_master", "update", None)]
    assert f"/{PREFIX}/subtitles/ko/*" in doc["invalidationPaths"]
    done = reconcile("apply", repo.manifests, "--replace", "11/subtitles/ko", "--auto-approve",
                     "--format", "json")
    assert done.code == 0, done.stdout + done.stderr
    subtitle_keys = [k for k in etags(s3, bucket, f"{PREFIX}/subtitles/ko/")]
    assert done.json()["sections"][0]["uploaded"] == len(subtitle_keys) > 0
    assert reconcile("plan", repo.manifests).code == 0
