"""Only a section's canonical folder is the section: `assets/curriculumsection/11/` is section 11,
`011/`, `+11/` or `١١/` (Arabic-Indic digits, which str.isdigit takes) are another tool's folders
that no plan names and no prune deletes. Against moto, with the catalogue-wide LIST that groups
keys by layout.section_of (the state index makes observe choose it for two sections)."""

from __future__ import annotations

import pytest
from conftest import KO_EN, CountingStore
from fake_packager import FakePackager

from reconciler import engine, layout
from reconciler.apply import apply_plan
from reconciler.inputs.reader import InputReader
from reconciler.observe import observe
from reconciler.plan import Action, Change, Kind, Plan, PlanOptions, SectionPlan
from reconciler.planner import make_plan
from reconciler.runtime import Runtime
from reconciler.store import open_store

ROOT = layout.ASSETS_ROOT
FOREIGN = [f"{ROOT}/{folder}/{rest}"
           for folder in ("011", "+11", "\u0661\u0661", "\uff11\uff11")
           for rest in ("master.m3u8", "video/v_000.m4s", "audio/ko/audio.m3u8")]


@pytest.mark.parametrize("key, section", [
    (f"{ROOT}/11/master.m3u8", 11), (f"{ROOT}/2147483647/video/init.mp4", 2147483647),
    (f"{ROOT}/011/master.m3u8", None), (f"{ROOT}/+11/x", None),
    (f"{ROOT}/0/x", 0), (f"{ROOT}/00/x", None),
    (f"{ROOT}/\u0661\u0661/x", None), (f"{ROOT}/\uff11\uff11/x", None), (f"{ROOT}/11", None),
    (f"{ROOT}/1 1/x", None), (f"{ROOT}/11 /x", None), ("assets/other/11/x", None),
])
def test_section_of_takes_only_the_canonical_folder(key, section):
    assert layout.section_of(key) == section
    if section is not None:
        assert key.startswith(layout.section_prefix(section))


@pytest.fixture
def catalogue(repo, bucket, s3, tmp_path):
    """Sections 11 and 12 applied (so the index exists), then another tool's folders whose
    names read as 11 to int(): wrong headers, so a plan that took them in would fix them."""
    repo.write(11, KO_EN)
    repo.write(12, KO_EN)
    settings = engine.Settings(store_url=f"s3://{bucket}", tmp_dir=tmp_path / "work")
    sections = engine.load([repo.manifests])
    assert engine.Reconciler(settings, packager=FakePackager()).apply(sections).ok
    for key in FOREIGN:
        s3.put_object(Bucket=bucket, Key=key, Body=b"another tool's", ContentType="text/plain")
    return settings, sections


def test_another_tools_folder_is_never_in_a_sections_plan(catalogue):
    settings, sections = catalogue
    store = CountingStore(open_store(settings.store_url))
    observed = observe(store, sections, inputs=InputReader())
    assert store.calls["list"] == 1  # the catalogue-wide LIST, grouped by section_of
    for obs in observed.values():
        prefix = layout.section_prefix(obs.section_id)
        assert [k for k in obs.objects if not k.startswith(prefix)] == []
    plan = make_plan(sections, observed)
    assert not plan.has_changes, plan.sections  # (was: fix metadata 011/master.m3u8 …)


def test_a_prune_of_the_section_deletes_only_its_own_folder(catalogue, s3, bucket):
    settings, sections = catalogue
    store = open_store(settings.store_url)
    own = set(store.list(layout.section_prefix(11)))
    kept = [s for s in sections if s.section_id == 12]
    observed = observe(store, kept, extra_ids=[11], inputs=InputReader())
    plan = make_plan(kept, observed, PlanOptions(prune=True, allow_empty=True),
                     removed={11: "manifests/section-11.yaml"})
    [delete] = plan.sections[1].actions
    assert set(delete.keys) == own
    rt = Runtime(store=store, tmp_dir=settings.tmp_dir, packager=FakePackager(),
                 inputs=InputReader())
    [result] = apply_plan(plan, {12: kept[0]}, observed, rt)
    assert result.ok, result.failures
    left = set(store.list(f"{ROOT}/"))
    assert set(FOREIGN) <= left and not own & left


def test_a_delete_outside_the_section_is_refused_whatever_planned_it(catalogue):
    """Defence in depth: apply refuses a delete naming a key outside the section's folder
    (here a hand-made plan), before deleting anything of that action."""
    settings, _ = catalogue
    store = open_store(settings.store_url)
    before = set(store.list(f"{ROOT}/"))
    keys = (layout.master_key(11), FOREIGN[0], layout.video_dir(11) + "v_000.m4s")
    plan = Plan((SectionPlan(11, "gone.yaml", (
        Action(Kind.DELETE_OBJECTS, Change.DELETE, None, "manifest deleted", keys=keys),)),))
    rt = Runtime(store=store, tmp_dir=settings.tmp_dir, packager=FakePackager(),
                 inputs=InputReader())
    [result] = apply_plan(plan, {}, {}, rt)
    assert not result.ok and "outside assets/curriculumsection/11/" in str(result.failures[0])
    assert set(store.list(f"{ROOT}/")) == before
