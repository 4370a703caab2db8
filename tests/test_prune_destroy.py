"""Deletion through GitOps, safely (issue 22, item 1), through the CLI on moto: orphaned
sections in a full plan, `--prune` deleting them and only them, the mass-prune guard, and
`reconcile destroy`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from cli_helpers import reconcile, store_listing
from test_cli_terminal import on_terminal
from test_reconcile_s3 import invalidations

from reconciler import layout
from reconciler.cli import DESTROY_PROMPT
from reconciler.observed import ObservedSection
from reconciler.plan import ORPHANED, PlanOptions
from reconciler.planner import make_plan
from reconciler.store import ObjectInfo

PREFIX = "assets/curriculumsection"
KO = [{"code": "ko", "audio": "source"}]


def assets(bucket: str) -> dict[str, str]:
    """The bucket's published objects (key -> ETag); the reconciler's own state index, a cache
    rewritten by any apply, is left out."""
    return {k: v for k, v in store_listing(f"s3://{bucket}").items() if k.startswith(PREFIX)}


def old_section(s3, bucket: str, sid: int) -> set[str]:
    """A folder the old scripts left (no manifest declares it): three objects."""
    keys = {f"{PREFIX}/{sid}/master.m3u8", f"{PREFIX}/{sid}/video/video.m3u8",
            f"{PREFIX}/{sid}/video/v_000.m4s"}
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"#EXTM3U\n")
    return keys


def test_an_orphaned_section_is_listed_by_a_full_plan_and_pruned_alone(repo, bucket, s3):
    repo.write(11, KO)
    assert reconcile("apply", repo.manifests).code == 0
    orphan = old_section(s3, bucket, 99)
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/README.txt", Body=b"not a section")
    before = assets(bucket)

    plan = reconcile("plan", repo.manifests)
    assert plan.code == 0, plan.stdout + plan.stderr  # listed, nothing pending without --prune
    assert ("orphaned: no manifest declares section 99; 3 object(s) kept (would be deleted "
            "with --prune)") in plan.stdout
    doc = reconcile("plan", repo.manifests, "--format", "json").json()
    [entry] = [s for s in doc["sections"] if s["sectionId"] == 99]
    assert entry["manifest"] is None and entry["actions"] == []
    assert "section 99" not in reconcile("plan", repo.manifests, "--section", "11").stdout
    assert "section 99" not in reconcile("plan", repo.manifests / "section-11.yaml").stdout
    comment = reconcile("plan", repo.manifests, "--format", "markdown")  # PR comment, drift
    assert "- section 99: orphaned: no manifest declares section 99" in comment.stdout

    pruning = reconcile("plan", repo.manifests, "--prune", "--format", "json")
    assert pruning.code == 2
    [entry] = [s for s in pruning.json()["sections"] if s["sectionId"] == 99]
    assert [(a["type"], sorted(a["keys"])) for a in entry["actions"]] == [
        ("delete_objects", sorted(orphan))]
    gone = reconcile("apply", repo.manifests, "--prune")
    assert gone.code == 0, gone.stdout + gone.stderr
    after = assets(bucket)
    assert after == {k: v for k, v in before.items() if k not in orphan}  # exactly its folder
    assert reconcile("plan", repo.manifests).code == 0


def test_a_prune_of_most_of_the_catalogue_is_refused_unless_allowed(repo, bucket, s3):
    repo.write(11, KO)
    assert reconcile("apply", repo.manifests).code == 0
    for sid in (97, 98, 99):
        old_section(s3, bucket, sid)
    before = assets(bucket)
    refused = reconcile("apply", repo.manifests, "--prune")
    assert refused.code == 1
    assert "pruning would delete 3 of the catalogue's 4 sections (more than 10%)" \
        in refused.stdout + refused.stderr
    assert "--allow-mass-prune" in refused.stdout + refused.stderr
    assert assets(bucket) == before

    # An emptied manifests/ is refused before the store is read.
    (repo.manifests / "section-11.yaml").unlink()
    empty = reconcile("apply", repo.manifests, "--prune", "--allow-mass-prune")
    assert empty.code == 1 and "no manifests found" in empty.stderr
    assert assets(bucket) == before

    repo.write(11, KO)
    allowed = reconcile("apply", repo.manifests, "--prune", "--allow-mass-prune")
    assert allowed.code == 0, allowed.stdout + allowed.stderr
    left = set(assets(bucket))
    assert left and all(k.startswith(f"{PREFIX}/11/") for k in left)


def test_destroy_removes_exactly_one_section_with_one_invalidation(
        repo, bucket, s3, distribution):
    repo.write(11, KO)
    assert reconcile("apply", repo.manifests).code == 0
    doomed = old_section(s3, bucket, 12)
    sent = len(invalidations(distribution))
    before = assets(bucket)

    # Without a terminal, only with --auto-approve.
    asked = reconcile("destroy", "--section", "12")
    assert asked.code == 1 and "--auto-approve" in asked.stderr
    assert assets(bucket) == before

    res = reconcile("destroy", "--section", "12", "--auto-approve")
    assert res.code == 0, res.stdout + res.stderr
    assert "delete objects assets/curriculumsection/12/ (3)" in res.stderr  # what it deletes
    after = assets(bucket)
    assert after == {k: v for k, v in before.items() if k not in doomed}
    assert invalidations(distribution)[sent:] == [[f"/{PREFIX}/12/*"]]


@pytest.mark.parametrize(("deleted", "catalogue", "refused"), [
    (1, 1, False), (1, 2, False),   # one section is never "mass"
    (2, 20, False), (3, 20, True),  # beyond 10 % and more than one
    (2, 10, True), (5, 5, True),    # all of them: an emptied manifests/
])
def test_the_mass_prune_guard_counts_whole_sections_against_the_catalogue(
        deleted, catalogue, refused):
    """Pure: make_plan with `deleted` orphaned folders, counted against `catalogue` sections."""
    observed = {sid: ObservedSection(sid, {layout.master_key(sid): ObjectInfo(
        layout.master_key(sid), 8, "etag", datetime(2026, 1, 1, tzinfo=UTC))})
        for sid in range(1, deleted + 1)}
    removed = dict.fromkeys(observed, ORPHANED)
    plan = make_plan([], observed, PlanOptions(prune=True), removed, catalogue=catalogue)
    assert plan.has_errors is refused and plan.has_changes is not refused
    if refused:
        assert all("--allow-mass-prune" in str(e) for sp in plan.sections for e in sp.errors)
    allowed = make_plan([], observed, PlanOptions(prune=True, allow_empty=True), removed,
                        catalogue=catalogue)
    assert allowed.counts()["delete"] == deleted and not allowed.has_errors


def test_destroy_on_a_terminal_asks_and_only_yes_deletes(tmp_path):
    store = tmp_path / "store"
    folder = store / PREFIX / "12"
    (folder / "video").mkdir(parents=True)
    for name in ("master.m3u8", "video/video.m3u8"):
        (folder / name).write_text("#EXTM3U\n")
    args = ["destroy", "--section", "12", "--store", f"file://{store}"]
    code, shown = on_terminal(args, answer="no", prompt=DESTROY_PROMPT)
    assert code == 1 and "destroy cancelled; nothing was deleted" in shown, shown
    assert f"- delete objects {PREFIX}/12/ (2)" in re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert (folder / "master.m3u8").exists()
    code, shown = on_terminal(args, answer="yes", prompt=DESTROY_PROMPT)
    assert code == 0, shown
    assert not any(p.is_file() for p in folder.rglob("*"))
    sent = (store / ".cdn/invalidations.jsonl").read_text().splitlines()
    assert len(sent) == 1 and f"/{PREFIX}/12/*" in sent[0]
