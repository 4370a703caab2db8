"""engine.scope / saved_scope / plan_scope / apply_scope: what a run covers, decided by the
library (the CLI only parses options into these calls), against a real git repo and a local
store."""

from __future__ import annotations

import pytest
from conftest import KO_EN
from test_gitops import git, init_git

from reconciler import engine, layout
from reconciler.errors import UsageError
from reconciler.plan import PlanOptions
from reconciler.planfile import StalePlan

KO = [{"code": "ko", "audio": "source", "default": True}]


def test_changed_since_narrows_to_changed_manifests_and_names_deleted_ones(repo):
    repo.write(11, KO_EN)
    gone = repo.write(12, KO_EN)
    repo.write(13, KO_EN)
    init_git(repo)
    repo.write(11, KO)
    gone.unlink()
    scope = engine.scope([repo.manifests], changed_since="HEAD")
    assert [s.section_id for s in scope.sections] == [11]
    assert scope.removed == {12: "manifests/section-12.yaml"}
    assert scope.options == PlanOptions() and scope.saved is None
    narrowed = engine.scope([repo.manifests], [13], changed_since="HEAD")
    assert narrowed.sections == [] and narrowed.removed == {12: "manifests/section-12.yaml"}
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "later")
    assert engine.scope([repo.manifests], changed_since="HEAD").sections == []


def test_saved_plan_fixes_sections_store_and_options_and_refuses_once_stale(repo, tmp_path):
    repo.write(11, KO_EN)
    repo.write(12, KO_EN)
    store = f"file://{tmp_path / 'store'}"
    rec = engine.Reconciler(engine.Settings(store_url=store, tmp_dir=tmp_path))
    out = tmp_path / "plan.json"
    made = engine.scope([repo.manifests], [11], store_url=store,
                        options=PlanOptions(prune=True))
    plan = rec.plan_scope(made, out)
    assert engine.is_saved_plan(out) and [sp.section_id for sp in plan.sections] == [11]

    saved = engine.saved_scope(out)
    assert [s.section_id for s in saved.sections] == [11]  # not 12, though it is declared
    assert saved.options == PlanOptions(prune=True) and saved.store_url == rec.store.url
    assert saved.paths == [repo.manifests]
    with pytest.raises(UsageError, match="not covered by the saved plan"):
        engine.saved_scope(out, [12])
    with pytest.raises(UsageError, match="the saved plan is for"):
        engine.saved_scope(out, store_url=f"file://{tmp_path / 'other'}")

    stray = tmp_path / "store" / layout.section_prefix(11) / "stray.m4s"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")  # the store moved after the plan was made
    with pytest.raises(StalePlan, match="stray.m4s appeared"):
        rec.apply_scope(saved)


def test_an_unreadable_saved_plan_is_one_error_naming_the_file(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"kind": "reconciler-saved-plan"}')
    with pytest.raises(UsageError, match="plan.json: not a readable saved plan"):
        engine.saved_scope(bad)
