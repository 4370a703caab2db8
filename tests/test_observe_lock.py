"""Observation's request budget and trust rule, and the lease's life cycle, on the local store
(the same Store interface as S3, without a server)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cli_helpers import reconcile
from conftest import KO_EN, CountingStore

from reconciler import engine, layout
from reconciler.inputs.reader import InputReader
from reconciler.layout import lock_key
from reconciler.lock import LockError, SectionLock, read_lease, unlock
from reconciler.observe import observe
from reconciler.planner import make_plan
from reconciler.store import StoreError, open_store
from reconciler.store.local import LocalStore


@pytest.fixture
def converged(repo, tmp_path):
    repo.write(11, KO_EN)
    url = f"file://{tmp_path / 'store'}"
    assert reconcile("--apply", repo.manifests, "--store", url).code == 0
    time.sleep(0.05)
    return url, engine.load([repo.manifests])


def test_converged_section_costs_one_list_and_a_few_gets(converged):
    """A full read (no record in the state index: a section written before it, or moved
    since); with its record it is 1 LIST + 1 GET (tests/test_state_index.py)."""
    url, sections = converged
    open_store(url).delete([layout.STATE_INDEX_KEY])
    store = CountingStore(open_store(url))
    observe(store, sections, inputs=InputReader())
    # the index, master + (playlist + init) for the video and each of 2 languages; no HEAD.
    assert dict(store.calls) == {"list": 1, "get": 1 + 1 + 2 * 3}


def test_an_object_touched_after_its_playlist_is_headed_and_deep_heads_all(converged):
    url, sections = converged
    root = Path(url[len("file://"):])
    store = LocalStore(root)
    seg = layout.audio_dir(11, "en") + "a_001.m4s"
    store.set_meta(seg, layout.ObjectMeta("text/plain", "no-cache"))
    counting = CountingStore(store)
    plan = make_plan(sections, observe(counting, sections, inputs=InputReader()))
    assert counting.calls["head"] == 1
    assert [a.keys for s in plan.sections for a in s.actions] == [(seg,)]

    # Backdate the damage: LIST can no longer tell, so only --deep finds it.
    side = root / ".meta" / (seg + ".json")
    old = os.stat(root / layout.audio_dir(11, "en") / "a_000.m4s").st_mtime
    os.utime(side, (old, old))
    assert not make_plan(sections, observe(store, sections, inputs=InputReader())).has_changes
    deep = CountingStore(store)
    assert make_plan(sections, observe(deep, sections, deep=True, inputs=InputReader())).has_changes
    segments = [k for k in store.list(layout.section_prefix(11)) if k.endswith(".m4s")]
    assert deep.calls["head"] == len(segments)


def test_lease_blocks_then_is_taken_over_after_expiry(tmp_path):
    store = LocalStore(tmp_path)
    now = [1000.0]
    first = SectionLock(store, 11, ttl=30, timeout=0, clock=lambda: now[0], sleep=lambda _: None)
    first.acquire()
    first._stop.set()  # no background renewal in this test: time is ours
    second = SectionLock(store, 11, ttl=30, timeout=0, clock=lambda: now[0],
                         sleep=lambda _: None)
    with pytest.raises(LockError, match=rf"lock {first.lease.lock_id} held by host .* pid"):
        second.acquire()
    now[0] += 31  # the first holder died; its lease expired
    second.acquire()
    second._stop.set()
    assert read_lease(store, 11)[0].lock_id == second.lease.lock_id
    first.renew()
    assert first.lost and "taken over" in first.lost
    first.release()  # must not remove the new holder's lease
    assert read_lease(store, 11)[0].lock_id == second.lease.lock_id
    second.release()
    assert store.get(lock_key(11)) is None


def test_unlock_needs_the_exact_lock_id(tmp_path):
    store = LocalStore(tmp_path)
    lock = SectionLock(store, 12, ttl=30)
    lock.acquire()
    lock._stop.set()
    with pytest.raises(LockError, match="held by lock"):
        unlock(store, 12, "not-it")
    with pytest.raises(LockError, match=r"is live: it expires at .* UTC \(in \d+s\).*--force"):
        unlock(store, 12, lock.lease.lock_id)  # its run may still be working
    assert read_lease(store, 12) is not None
    assert unlock(store, 12, lock.lease.lock_id, now=lock.lease.expires + 1).lock_id == \
        lock.lease.lock_id  # expired: removed without --force
    lock.acquire()
    lock._stop.set()
    assert unlock(store, 12, lock.lease.lock_id, force=True).lock_id == lock.lease.lock_id
    with pytest.raises(LockError, match="not locked"):
        unlock(store, 12, lock.lease.lock_id)


def test_an_unchanged_listing_reuses_this_runs_observation_and_a_changed_one_is_read(converged):
    """The re-plan under the lock observes once: one LIST shows nothing moved, so the GETs
    made moments ago are not repeated; anything moved is read again."""
    url, sections = converged
    store = LocalStore(Path(url[len("file://"):]))
    first = observe(store, sections, inputs=InputReader())
    again = CountingStore(store)
    assert observe(again, sections, previous=first, inputs=InputReader())[11] is first[11]
    assert dict(again.calls) == {"list": 1}
    seg = layout.audio_dir(11, "en") + "a_001.m4s"
    time.sleep(0.01)
    store.set_meta(seg, layout.ObjectMeta("text/plain", "no-cache"))
    moved = CountingStore(store)
    fresh = observe(moved, sections, previous=first, inputs=InputReader())[11]
    assert fresh is not first[11] and moved.calls["get"] == 7 and moved.calls["head"] == 1


class FailingRenewals(LocalStore):
    """A local store whose lease renewals (conditional writes of a lock) fail, as when the
    network to the bucket goes away mid-run; everything else works."""

    def put_bytes(self, key, body, meta, *, if_match=None, if_none_match=False):
        if key.startswith("locks/") and if_match:
            raise StoreError(f"PUT {self.url}/{key}: EndpointConnectionError")
        return super().put_bytes(key, body, meta, if_match=if_match,
                                 if_none_match=if_none_match)


def test_failed_renewals_stop_writes_before_the_lease_can_lapse(tmp_path):
    now = [1000.0]
    lock = SectionLock(FailingRenewals(tmp_path), 11, ttl=30, clock=lambda: now[0])
    lock.acquire()
    lock._stop.set()  # renewals driven by the test
    lock.guard()  # fresh lease: writes go ahead
    now[0] += 10
    lock.renew()  # fails; the lease in the store still runs to 1030
    assert lock.renew_error and not lock.lost
    lock.guard()  # 20 s left: still safe
    now[0] += 9.9
    lock.guard()
    now[0] += 0.2  # within ttl/3 of the lapse, with no renewal since
    with pytest.raises(StoreError, match="could not be renewed .*EndpointConnectionError.*"
                                         "stopped writing that section before its lease lapses"):
        lock.guard()
    assert "stopped writing" in lock.lost


def test_an_apply_whose_lease_cannot_be_renewed_stops_and_says_so(repo, tmp_path):
    """End to end: renewals fail from the start and the lease is short, so by the time the
    first rendition is packaged (two ffmpeg runs) the lease is unsure; nothing is written, and
    the run says why."""
    repo.write(11, KO_EN)
    store = FailingRenewals(tmp_path / "store")
    # A 60 ms lease is unsure 40 ms after it is taken, long before two ffmpeg runs end.
    settings = engine.Settings(store_url=store.url, tmp_dir=tmp_path, lock_ttl=0.06)
    outcome = engine.Reconciler(settings, store=store).apply(engine.load([repo.manifests]))
    assert not outcome.ok
    said = " ".join(outcome.errors + [str(f) for r in outcome.results for f in r.failures])
    assert "could not be renewed" in said and "stopped writing" in said, said
    assert [k for k in store.list("") if not k.startswith("locks/")] == []


def test_a_re_plan_round_keeps_the_earlier_rounds_warnings_and_work():
    """Issue 12: when master changed under an apply, the section was re-planned and the first
    round's result replaced, dropping its warnings (e.g. audio padded) and fixes/deletions."""
    from reconciler.results import SectionResult

    first = SectionResult(11, warnings=["en: audio is 9.0s, video 10.0s: padded with silence"],
                          uploaded=["a"], fixed=["b"], deleted=["c"], dubbed=["ja"])
    second = SectionResult(11, warnings=["ja: transcript not fetched yet"], uploaded=["d"])
    merged = engine.merge_rounds(first, second)
    assert merged.warnings == ["en: audio is 9.0s, video 10.0s: padded with silence",
                               "ja: transcript not fetched yet"]
    assert (merged.uploaded, merged.fixed, merged.deleted, merged.dubbed) == (
        ["a", "d"], ["b"], ["c"], ["ja"])
