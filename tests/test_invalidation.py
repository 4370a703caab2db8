"""The CDN's invalidation as state: paths not yet accepted are kept in the bucket, shown by the
next plan and sent by the next apply; requests stay within CloudFront's quotas (15 wildcard and
3,000 file paths in progress), waiting for capacity while the deadline allows.

CloudFront is moto behind the fault proxy (tests/faultproxy.py), which keeps CloudFront's
contract moto does not: the quotas (counting invalidations it holds InProgress), and the
CallerReference rule. Waiting uses a clock the test controls; nothing here sleeps.
"""

from __future__ import annotations

import json

import boto3
import pytest
import yaml
from cli_helpers import reconcile
from conftest import CountingStore
from fake_packager import FakePackager
from faultproxy import FaultProxy, Rule
from hypothesis import given
from hypothesis import strategies as st

from reconciler import engine, layout
from reconciler.cdn import CdnBusy, CdnError, Usage
from reconciler.cdn.cloudfront import CloudFront
from reconciler.cdn.delivery import Delivery
from reconciler.cdn.pending import KEY, PendingRecord
from reconciler.cdn.quota import LIMIT, collapse
from reconciler.cdn.recorded import RecordedCdn
from reconciler.engine import pending_invalidation as pending_summary
from reconciler.store import open_store
from reconciler.store.s3 import s3_client

KO = [{"code": "ko", "audio": "source", "default": True}]
MASTER_11 = "/assets/curriculumsection/11/master.m3u8"


class Clock:
    """Seconds since the epoch that move only when the code under test sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep()


@pytest.fixture
def proxy(moto_server, s3, monkeypatch):
    """The fault proxy in front of moto; the store's and CloudFront's clients go through it."""
    fp = FaultProxy(moto_server).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", fp.url)
    s3_client.cache_clear()
    yield fp
    fp.stop()
    s3_client.cache_clear()


def moto_invalidations(moto_server: str, distribution: str) -> list[list[str]]:
    cf = boto3.client("cloudfront", region_name="us-east-1", endpoint_url=moto_server)
    items = cf.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items")
    return [cf.get_invalidation(DistributionId=distribution, Id=i["Id"])["Invalidation"][
        "InvalidationBatch"]["Paths"]["Items"] for i in items or []]


def covered(path: str, by: list[str]) -> bool:
    return any(p == path or (p.endswith("*") and path.startswith(p[:-1])) for p in by)


# -- item 5: a failed invalidation is state --------------------------------------------------


def test_a_failed_invalidation_stays_pending_until_an_apply_gets_it_accepted(
    repo, bucket, distribution, moto_server, monkeypatch
):
    repo.write(11, KO)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", "EWRONGDISTRIBUTION")
    failed = reconcile("--apply", repo.manifests)
    assert failed.code == 1
    assert "CreateInvalidation on EWRONGDISTRIBUTION: NoSuchDistribution" in failed.stdout
    assert f"1 path(s) kept pending in {KEY}" in failed.stdout

    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 2, plan.stdout + plan.stderr
    assert "~ invalidate 1 path pending since 20" in plan.stdout
    assert "NoSuchDistribution" in plan.stdout and MASTER_11 in plan.stdout
    assert "Plan: 0 to create, 1 to update, 0 to delete." in plan.stdout
    as_json = reconcile("--plan", repo.manifests, "--format", "json")
    assert as_json.code == 2
    waiting = as_json.json()["pendingInvalidation"]
    assert waiting["paths"] == [MASTER_11] and waiting["since"].endswith("Z")
    markdown = reconcile("--plan", repo.manifests, "--format", "markdown").stdout
    assert "! invalidate 1 path pending since" in markdown and MASTER_11 in markdown

    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", distribution)
    assert moto_invalidations(moto_server, distribution) == []
    sent = reconcile("--apply", repo.manifests)
    assert sent.code == 0, sent.stdout + sent.stderr
    assert moto_invalidations(moto_server, distribution) == [[MASTER_11]]
    assert PendingRecord(open_store(f"s3://{bucket}")).read() == {}
    assert reconcile("--plan", repo.manifests).code == 0


def test_the_paths_are_recorded_before_create_invalidation_is_called(
    bucket, distribution, moto_server, proxy
):
    """A crash between the writes and the call cannot lose them: at the moment the request
    reaches CloudFront, the record already holds its paths."""
    store = open_store(f"s3://{bucket}")
    at_request: list[dict] = []
    proxy.rules.append(Rule("POST", r"/invalidation$", "pass",
                            hook=lambda seen: at_request.append(PendingRecord(store).read())))
    inv = Delivery(PendingRecord(store), CloudFront(distribution)).send([MASTER_11])
    assert inv is not None and inv.paths == (MASTER_11,)
    assert [[e["paths"] for e in entries.values()] for entries in at_request] == [[[MASTER_11]]]
    assert PendingRecord(store).read() == {}  # cleared once accepted


def test_a_lost_answer_is_retried_as_the_same_invalidation(bucket, distribution, moto_server,
                                                           proxy):
    """botocore retries a CreateInvalidation whose answer was lost with the same
    CallerReference; CloudFront (here the proxy, which keeps its contract) answers with the
    invalidation it already made."""
    proxy.rules.append(Rule("POST", r"/invalidation$", "drop", times=1))
    record = PendingRecord(open_store(f"s3://{bucket}"))
    inv = Delivery(record, CloudFront(distribution)).send([MASTER_11])
    assert inv is not None
    assert len({ref for _, ref in proxy.invalidation_refs}) == 1
    assert len(proxy.invalidation_refs) == 2 and proxy.invalidations_forwarded == 1
    assert moto_invalidations(moto_server, distribution) == [[MASTER_11]]


def test_concurrent_applies_merge_their_pending_entries(tmp_path):
    """Two applies that both planned (read the record) before either wrote: the second write
    loses the race (412), reads again and merges, so both entries are kept; a clear from a
    stale version keeps the other's entry. Uncontested, a change is one conditional PUT."""
    store = CountingStore(open_store(f"file://{tmp_path}/store"))
    first, second = PendingRecord(store), PendingRecord(store)
    assert first.read() == {} and second.read() == {}
    first.add("run-a", ["/a/1"], "2026-12-05T10:00:00Z")
    second.add("run-b", ["/b/1", "/a/1"], "2026-12-05T11:00:00Z")
    second.keep({"run-b": second.read()["run-b"]}, "CreateInvalidation on E1: AccessDenied")
    summary = pending_summary(PendingRecord(store).read())
    assert summary is not None
    assert summary.paths == ("/a/1", "/b/1") and summary.since == "2026-12-05T10:00:00Z"
    assert summary.error == "CreateInvalidation on E1: AccessDenied"
    first.clear(["run-a"])  # its version is stale: 412, read, merge
    assert set(PendingRecord(store).read()) == {"run-b"}

    store.calls.clear()
    third = PendingRecord(store)
    third.read()
    third.add("run-c", ["/c/1"], "2026-12-05T12:00:00Z")
    third.clear(["run-c"])
    assert dict(store.calls) == {"get": 1, "put_bytes": 2}


def test_a_pending_invalidation_is_sent_with_the_next_apply_of_the_local_store(tmp_path):
    """The recorded CDN keeps CloudFront's contract, and the local store keeps the record."""
    store = open_store(f"file://{tmp_path}/store")
    cdn = RecordedCdn(tmp_path / "store" / ".cdn" / "invalidations.jsonl")
    PendingRecord(store).add("earlier", ["/assets/curriculumsection/12/video/*"],
                             "2026-12-05T10:00Z")
    inv = Delivery(PendingRecord(store), cdn).send([MASTER_11])
    assert inv is not None
    assert set(inv.paths) == {MASTER_11, "/assets/curriculumsection/12/video/*"}
    assert PendingRecord(store).read() == {}
    assert [e["paths"] for e in cdn.read()] == [list(inv.paths)]
    assert cdn.invalidate(list(inv.paths), cdn.read()[0]["caller_reference"]).id == inv.id
    with pytest.raises(CdnError, match="InvalidationBatchAlreadyExists"):
        cdn.invalidate(["/other"], cdn.read()[0]["caller_reference"])


# -- item 6: CloudFront's quotas --------------------------------------------------------------


def section_paths(sections: int) -> list[str]:
    out = []
    for sid in range(sections):
        base = f"/assets/curriculumsection/{sid}/"
        out += [base + "master.m3u8", base + "video/*", base + "audio/ko/*", base + "audio/en/*"]
    return out


paths_strategy = st.lists(
    st.builds(lambda sid, leaf: f"/assets/curriculumsection/{sid}/{leaf}",
              st.integers(0, 30),
              st.sampled_from(["master.m3u8", "video/*", "audio/ko/*", "audio/en/*",
                               "subtitles/ko/*", "*", "audio/ja/*"])),
    max_size=120)


@given(paths_strategy, st.integers(0, 15), st.integers(0, 40))
def test_collapsed_paths_cover_every_path_and_fit_the_room(paths, wildcards, files):
    room = Usage(wildcards, files)
    got = collapse(paths, room)
    if got is None:
        assert wildcards == 0  # one wildcard always fits: the folder common to all
        return
    assert Usage.of(got).within(room)
    assert all(covered(p, got) for p in paths)
    assert len(got) == len(set(got))
    if Usage.of(list(dict.fromkeys(paths))).within(room):
        assert set(got) <= set(paths)  # nothing collapsed that fitted


def test_collapse_goes_to_the_section_folder_then_coarser():
    three = section_paths(4)  # 12 wildcards and 4 files: within the quotas as they are
    assert collapse(three) == three
    tight = collapse(three, Usage(6, 3000))
    assert tight is not None and Usage.of(tight).wildcards <= 6
    assert "/assets/curriculumsection/3/*" in tight  # a section's renditions: its folder
    assert collapse(section_paths(20)) == ["/assets/curriculumsection/*"]


def test_twenty_sections_rebuilt_send_no_request_over_the_quotas(
    tmp_path, bucket, distribution, moto_server, proxy
):
    """A changed input rebuilds video and audio of 20 sections (60 wildcard paths, 20
    masters): the one request sent keeps within 15 wildcard paths and covers them all."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    video = root / "lecture.mp4"
    video.write_bytes(b"canned video, first cut")
    for sid in range(1, 21):
        (root / f"section-{sid}.yaml").write_text(yaml.safe_dump({
            "sectionId": sid, "video": "lecture.mp4", "languages": [
                {"code": "ko", "audio": "source", "default": True},
                {"code": "en", "audio": "lecture.mp4"}]}))
    settings = engine.Settings.from_env(f"s3://{bucket}")
    rec = engine.Reconciler(settings, cdn=CloudFront(distribution), packager=FakePackager())
    first = rec.apply(engine.load([root]))
    assert first.ok, first.errors
    video.write_bytes(b"canned video, second cut")
    proxy.reset_observations()
    sections = engine.load([root])
    plan, _ = rec.plan(sections)
    wanted = list(plan.invalidation_paths)
    assert Usage.of(wanted).wildcards > LIMIT.wildcards  # the old single request: over quota
    outcome = rec.apply(sections)
    assert outcome.ok, outcome.errors
    assert proxy.invalidation_batches, "nothing sent"
    assert all(Usage.of(paths).within(LIMIT) for _, paths in proxy.invalidation_batches)
    assert [f.kind for f in proxy.faults] == []  # never refused: it fitted the first time
    [sent] = moto_invalidations(moto_server, distribution)[-1:]
    assert all(covered(p, sent) for p in wanted)


def test_a_busy_distribution_is_waited_for_then_the_paths_fit_what_is_free(
    bucket, distribution, moto_server, proxy
):
    """14 wildcard paths of another run are in progress: the 3 of this apply are refused
    (TooManyInvalidationsInProgress), ListInvalidations shows 1 free, and they are sent as
    the one wildcard that covers them (the section's folder), 2-5 s later on the test's
    clock."""
    proxy.hold_invalidations = True
    other = [f"/assets/curriculumsection/{sid}/video/*" for sid in range(100, 114)]
    CloudFront(distribution).invalidate(other, "another-run")
    clock = Clock()
    store = open_store(f"s3://{bucket}")
    mine = section_paths(1)
    delivery = Delivery(PendingRecord(store), CloudFront(distribution), timeout=60, clock=clock,
                        sleep=clock.sleep)
    inv = delivery.send(mine)
    assert inv is not None and inv.paths == ("/assets/curriculumsection/0/*",)
    assert [f.kind for f in proxy.faults] == ["TooManyInvalidationsInProgress"]
    assert len(clock.slept) == 1 and 2 <= clock.slept[0] <= 5
    assert all(Usage.of(p).within(LIMIT) for _, p in proxy.invalidation_batches)
    assert PendingRecord(store).read() == {}


def test_too_many_in_progress_is_retried_as_one_invalidation(bucket, distribution,
                                                             moto_server, proxy):
    """Refused twice (TooManyInvalidationsInProgress), sent a third time with the same
    CallerReference: exactly one invalidation exists."""
    proxy.too_many_invalidations = 2
    clock = Clock()
    delivery = Delivery(PendingRecord(open_store(f"s3://{bucket}")), CloudFront(distribution),
                        clock=clock, sleep=clock.sleep)
    inv = delivery.send([MASTER_11])
    assert inv is not None
    assert [f.kind for f in proxy.faults] == ["TooManyInvalidationsInProgress"] * 2
    refs = [ref for _, ref in proxy.invalidation_refs]
    assert len(refs) == 3 and len(set(refs)) == 1 and refs[0].startswith("reconciler-")
    assert proxy.invalidations_forwarded == 1 and len(clock.slept) == 2
    assert moto_invalidations(moto_server, distribution) == [[MASTER_11]]


def test_throttling_waits_within_the_deadline_then_keeps_the_paths_pending(
    bucket, distribution, moto_server, proxy
):
    proxy.hold_invalidations = True
    CloudFront(distribution).invalidate(
        [f"/assets/curriculumsection/{sid}/video/*" for sid in range(100, 115)], "another-run")
    clock = Clock()
    store = open_store(f"s3://{bucket}")
    cdn = CloudFront(distribution)
    start = clock()
    with pytest.raises(CdnBusy, match=rf"{distribution}: TooManyInvalidationsInProgress.*kept "
                                      "pending"):
        Delivery(PendingRecord(store), cdn, timeout=30, clock=clock,
                 sleep=clock.sleep).send([MASTER_11 + "*"])
    assert clock() - start == pytest.approx(30)  # waited exactly as long as allowed
    assert len(clock.slept) >= 6 and all(s <= 5 for s in clock.slept)
    [entry] = PendingRecord(store).read().values()
    assert entry["paths"] == [MASTER_11 + "*"] and "TooManyInvalidations" in entry["error"]
    assert proxy.invalidations_forwarded == 1  # the other run's only

    # Capacity frees up while the next apply waits: it sends the pending paths and clears them.
    clock.on_sleep = proxy.complete_invalidations
    inv = Delivery(PendingRecord(store), cdn, timeout=30, clock=clock, sleep=clock.sleep).send([])
    assert inv is not None and inv.paths == (MASTER_11 + "*",)
    assert PendingRecord(store).read() == {}


def test_the_apply_reports_a_throttled_invalidation_as_pending(
    repo, bucket, distribution, moto_server, proxy
):
    """End to end: with the run's deadline used up, the apply exits 1 saying the paths are
    kept pending, and the next plan shows them."""
    repo.write(11, KO)
    proxy.too_many_invalidations = 1000
    settings = engine.Settings.from_env(invalidation_timeout=0)
    outcome = engine.Reconciler(settings).apply(engine.load([repo.manifests]))
    assert not outcome.ok and outcome.invalidation is None
    assert any("kept pending" in e for e in outcome.errors), outcome.errors
    plan = reconcile("--plan", repo.manifests, "--format", "json")
    assert plan.code == 2 and plan.json()["pendingInvalidation"]["paths"] == [MASTER_11]
    assert json.loads(plan.stdout)["summary"]["changes"] is True
    assert layout.master_key(11)  # the section itself converged: only the CDN is pending
    assert plan.json()["sections"][0]["actions"] == []


# -- the plan's data and views ----------------------------------------------------------------


def test_a_pending_invalidation_round_trips_through_the_saved_form_and_never_stales_it(
    repo, tmp_path
):
    """The JSON view (the saved plan's format) carries it exactly; a saved plan is not refused
    because a pending invalidation came or went since review: the apply sends what is pending
    when it ends."""
    from reconciler.plan import PendingInvalidation, Plan
    from reconciler.planfile import plan_dict, plan_from_dict
    from reconciler.render import plan_text

    plan = Plan((), (), pending_invalidation=PendingInvalidation(
        tuple(f"/assets/curriculumsection/{i}/master.m3u8" for i in range(12)),
        "2026-12-05T03:23:41Z", "CreateInvalidation on E1: AccessDenied"))
    assert plan_from_dict(json.loads(json.dumps(plan_dict(plan)))) == plan
    text = plan_text(plan)
    assert "~ invalidate 12 paths pending since 2026-12-05T03:23:41Z  (last attempt: " \
           "CreateInvalidation on E1: AccessDenied)" in text
    assert "… and 2 more" in text and plan.has_changes

    url = f"file://{tmp_path}/store"
    repo.write(11, KO)
    assert reconcile("--apply", repo.manifests, "--store", url).code == 0
    store = open_store(url)
    PendingRecord(store).add("earlier", ["/assets/curriculumsection/11/audio/ko/*"],
                             "2026-12-05T03:00Z")
    saved = tmp_path / "plan.json"
    assert reconcile("--plan", repo.manifests, "--store", url, "--out", saved).code == 2
    PendingRecord(store).clear(["earlier"])  # another apply sent it meanwhile
    applied = reconcile("--apply", saved)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert reconcile("--plan", repo.manifests, "--store", url).code == 0


def test_a_record_that_cannot_be_written_is_said_never_claimed(bucket, distribution, moto_server,
                                                               proxy):
    """The bucket refuses the record (403 on every PUT of it): an accepted invalidation only
    warns; a refused one says its paths could not be kept, instead of claiming they were."""
    proxy.rules.append(Rule("PUT", KEY.replace(".", r"\.") + "$", 403))
    said: list[str] = []
    record = PendingRecord(open_store(f"s3://{bucket}"))
    inv = Delivery(record, CloudFront(distribution), say=said.append).send([MASTER_11])
    assert inv is not None and moto_invalidations(moto_server, distribution) == [[MASTER_11]]
    assert said and "could not record the invalidation as pending" in said[0]
    with pytest.raises(CdnError, match="could not be kept pending either") as refused:
        Delivery(record, CloudFront("EWRONGDISTRIBUTION"), say=said.append).send([MASTER_11])
    assert "kept pending in" not in str(refused.value)
    assert record.read() == {}
