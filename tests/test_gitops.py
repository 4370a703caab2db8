"""Saved plans, --changed-since and the markdown view, against moto and a real git repo."""

from __future__ import annotations

import json
import subprocess

from cli_helpers import reconcile
from conftest import KO_EN

PREFIX = "assets/curriculumsection"


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo.root), *args], check=True,
                          capture_output=True, text=True).stdout


def init_git(repo) -> None:
    (repo.root / ".git").rmdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")


def test_saved_plan_applies_exactly_and_then_is_stale(repo, bucket, s3, tmp_path):
    repo.write(11, KO_EN)
    out = tmp_path / "plan.json"
    plan = reconcile("--plan", repo.manifests, "--out", out)
    assert plan.code == 2 and out.exists()
    saved = json.loads(out.read_text())
    assert saved["plan"]["sections"][0]["sectionId"] == 11
    assert saved["observed"]["11"]["objects"] == {}  # an empty bucket, recorded as such

    applied = reconcile("--apply", out)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert reconcile("--plan", repo.manifests).code == 0
    # The same saved plan again: the bucket is no longer empty.
    again = reconcile("--apply", out)
    assert again.code == 1
    assert again.stderr.startswith("Error: stale plan: section 11: ")
    assert f"{PREFIX}/11/audio/en/a_000.m4s appeared" in again.stderr
    assert "… and " in again.stderr  # long lists are cut, with a count


def test_saved_plan_refuses_when_an_object_changed_between_plan_and_apply(repo, bucket, s3,
                                                                         tmp_path):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    key = f"{PREFIX}/11/audio/en/init.mp4"
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                   MetadataDirective="REPLACE", ContentType="text/plain")
    out = tmp_path / "plan.json"
    assert reconcile("--plan", repo.manifests, "--out", out).code == 2
    # Someone re-uploads the init with different bytes after the review.
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the same", ContentType="video/mp4")
    res = reconcile("--apply", out)
    assert res.code == 1
    assert f"stale plan: section 11: {key} changed" in res.stderr
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(b"not the same")  # nothing was applied


def test_saved_plan_refuses_changed_manifests(repo, bucket, tmp_path):
    repo.write(11, KO_EN)
    out = tmp_path / "plan.json"
    assert reconcile("--plan", repo.manifests, "--out", out).code == 2
    repo.write(11, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])
    res = reconcile("--apply", out)
    assert res.code == 1 and "stale plan: section 11: its manifest changed" in res.stderr


def test_changed_since_narrows_to_changed_and_reports_deleted_manifests(repo, bucket, s3):
    repo.write(11, KO_EN)
    repo.write(12, KO_EN)
    repo.write(13, KO_EN)
    init_git(repo)
    assert reconcile("--apply", repo.manifests).code == 0
    git(repo, "tag", "applied")
    repo.write(12, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])
    (repo.manifests / "section-13.yaml").unlink()
    res = reconcile("--plan", repo.manifests, "--changed-since", "applied", "--format", "json")
    assert res.code == 2, res.stderr
    doc = res.json()
    assert [s["sectionId"] for s in doc["sections"]] == [12, 13]
    assert [(a["type"], a["language"]) for a in doc["sections"][0]["actions"]] == [
        ("package_audio", "ja"), ("write_master", None)]
    assert doc["sections"][1]["actions"] == []
    assert "was deleted" in doc["sections"][1]["notes"][0]

    # One section of three is within the mass-prune guard: --prune alone deletes it.
    pruned = reconcile("--plan", repo.manifests, "--changed-since", "applied", "--prune")
    assert pruned.code == 2 and f"delete objects {PREFIX}/13/" in pruned.stdout
    gone = reconcile("--apply", repo.manifests, "--changed-since", "applied", "--prune")
    assert gone.code == 0, gone.stdout + gone.stderr
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/13/")
    assert listed.get("KeyCount", 0) == 0
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/11/")["KeyCount"] > 0


def test_saved_plan_made_with_changed_since_applies_exactly_the_sections_it_covers(
    repo, bucket, s3, tmp_path
):
    """The plan file records the sections the plan covered (and deleted manifests), not the
    flags: applying it neither widens to every manifest nor calls the others 'appeared'."""
    from conftest import master_languages

    for sid in (11, 12, 13):
        repo.write(sid, KO_EN)
    init_git(repo)
    assert reconcile("--apply", repo.manifests).code == 0
    git(repo, "tag", "applied")
    repo.write(12, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])
    (repo.manifests / "section-13.yaml").unlink()
    out = tmp_path / "plan.json"
    assert reconcile("--plan", repo.manifests, "--changed-since", "applied", "--out",
                     out).code == 2
    saved = json.loads(out.read_text())["manifests"]
    assert (saved["sections"], list(saved["removed"])) == ([12], ["13"])
    repo.write(11, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])  # not in the plan

    refused = reconcile("--apply", out, "--section", "11")
    assert refused.code == 1 and "--section 11: not covered by the saved plan" in refused.stderr
    applied = reconcile("--apply", out)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert master_languages(s3, bucket, 12) == ["ko", "en", "ja"]
    assert master_languages(s3, bucket, 11) == ["ko", "en"]  # exactly the plan's sections
    assert master_languages(s3, bucket, 13) == ["ko", "en"]  # deleted manifest: objects kept


def test_saved_plan_narrowed_to_one_section_applies_only_it(repo, bucket, s3, tmp_path):
    """What one job of the apply matrix does with the reviewed plan: its own sections only."""
    from conftest import master_languages

    repo.write(11, KO_EN)
    repo.write(12, KO_EN)
    out = tmp_path / "plan.json"
    assert reconcile("--plan", repo.manifests, "--out", out).code == 2
    res = reconcile("--apply", out, "--section", "12")
    assert res.code == 0, res.stdout + res.stderr
    assert (master_languages(s3, bucket, 11), master_languages(s3, bucket, 12)) == (
        [], ["ko", "en"])
    assert reconcile("--apply", out, "--section", "11").code == 0  # 11 untouched: still valid
    assert reconcile("--plan", repo.manifests).code == 0


def test_changed_since_unknown_ref_is_a_clear_error(repo, bucket):
    repo.write(11, KO_EN)
    init_git(repo)
    res = reconcile("--plan", repo.manifests, "--changed-since", "no-such-ref")
    assert res.code == 1 and "git diff" in res.stderr


def test_markdown_plan_is_a_reviewable_comment(repo, bucket):
    repo.write(11, KO_EN + [{"code": "ja"}])
    res = reconcile("--plan", repo.manifests, "--format", "markdown")
    assert res.code == 2
    md = res.stdout
    assert md.startswith("**Plan: ")  # no heading: the comment has one
    assert "| Section | Video | Languages added / rebuilt | Metadata fixes | Dub minutes" in md
    assert "| 11 | create | ko, en, ja | — | 0.08 |" in md
    assert "<details><summary>Section 11: 6 change(s)</summary>" in md
    assert "```diff\n+ package video  (missing)" in md
    assert "`/assets/curriculumsection/11/master.m3u8`" in md


def test_workflow_glue_runs_the_real_plan_against_moto(repo, bucket, tmp_path, monkeypatch):
    """What plan.yml does, end to end: run the plan through the glue, build the sticky comment."""
    import sys

    from reconciler import github as gh

    repo.write(11, KO_EN)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    report = tmp_path / "report.md"
    cmd = [sys.executable, "-m", "reconciler.cli", "--plan", "--format", "markdown",
           str(repo.manifests)]
    assert gh.run_reconcile(cmd, mode="plan", report=report) == 0  # 2 = pending, not a failure
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines()
                   if "=" in line)
    assert outputs["exit-code"] == "2" and outputs["changes"] == "true"
    body = gh.build_comment(report.read_text(), exit_code=2, run_url="https://ci/run/1",
                            validate_only=False)
    assert body.startswith(gh.MARKER)
    assert "| 11 | create | ko, en | — | — |" in body
    assert len(body) <= gh.COMMENT_LIMIT

    assert reconcile("--apply", repo.manifests).code == 0
    assert gh.run_reconcile(cmd, mode="plan", report=report) == 0
    assert "No changes." in report.read_text()
