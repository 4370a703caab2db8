"""The state index (reconciler/state.py): a converged catalogue is observed with one LIST and
one GET, a section whose LIST differs from its record in any way is read as before, and the
index is a cache an apply keeps up to date without ever failing because of it. Against the moto
server (real ETags, LastModified and conditional writes) and the local store."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest
from cli_helpers import reconcile
from conftest import KO_EN, CountingStore, Repo

from reconciler import engine, layout
from reconciler.inputs.reader import InputReader
from reconciler.observe import observe
from reconciler.observed import ObservedSection
from reconciler.plan import PlanOptions
from reconciler.planner import make_plan
from reconciler.state import load_index, update_index
from reconciler.store import PreconditionFailed, StoreError, open_store

IDS = (11, 12, 13, 14, 15, 16)


class NoIndex:
    """The store as the code before the index saw it: a full read of every section."""

    def __init__(self, inner) -> None:
        self.inner, self.url = inner, inner.url

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, key):
        return None if key == layout.STATE_INDEX_KEY else self.inner.get(key)


def signature(obs: ObservedSection) -> dict:
    """What observe found of a section's store side, beyond what LIST alone says."""
    rends = {("video", None): obs.video, **{("audio", c): r for c, r in obs.audio.items()},
             **{("subtitles", c): r for c, r in obs.subtitles.items()}}
    return {
        "master": obs.master_text,
        "objects": {k: (i.etag, i.size) for k, i in obs.objects.items()},
        "renditions": {name: (r.playlist, r.track, r.problems, r.stamp, r.complete)
                       for name, r in rends.items() if r.exists or r.problems},
    }


def _catalogue(media, tmp_path_factory) -> tuple[str, Repo, list]:
    """Six sections applied in one run against moto: the apply records each in the index."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
    repo = Repo(tmp_path_factory.mktemp("catalogue") / "repo", media)
    for sid in IDS:
        repo.write(sid, KO_EN)
    url = f"s3://{bucket}"
    result = reconcile("--apply", repo.manifests, "--store", url)
    assert result.code == 0, result.stderr
    return url, repo, engine.load([repo.manifests])


@pytest.fixture(scope="module")
def catalogue(moto_server, media, tmp_path_factory):
    """A converged catalogue no test changes: whatever order the tests run in, it is as the
    apply left it."""
    return _catalogue(media, tmp_path_factory)


@pytest.fixture(scope="module")
def scratch_catalogue(moto_server, media, tmp_path_factory):
    """A second catalogue for the tests that change the bucket or its index behind the
    index's back."""
    return _catalogue(media, tmp_path_factory)


def test_a_converged_catalogue_is_one_list_and_one_get_and_plans_as_a_full_read(catalogue):
    url, _, sections = catalogue
    store = CountingStore(open_store(url))
    observed = observe(store, sections, inputs=InputReader())
    assert dict(store.calls) == {"list": 1, "get": 1}  # the whole prefix, the index
    assert all(o.indexed for o in observed.values())
    full = observe(NoIndex(open_store(url)), sections, inputs=InputReader())
    assert not any(o.indexed for o in full.values())
    for sid in IDS:
        assert signature(observed[sid]) == signature(full[sid])
    plan = make_plan(sections, observed)
    assert not plan.has_changes and plan == make_plan(sections, full)


def test_a_deep_observe_ignores_the_index(catalogue):
    url, _, sections = catalogue
    store = CountingStore(open_store(url))
    observed = observe(store, sections[:1], deep=True, inputs=InputReader())
    assert not observed[sections[0].section_id].indexed
    assert store.calls["get"] == 1 + 2 * 3 and store.calls["head"] >= 6  # no index GET


def test_the_plan_from_the_index_equals_the_plan_from_a_full_read(catalogue, tmp_path):
    """A changed manifest (ja added to one section) plans the same from either source."""
    url, repo, _ = catalogue
    other = Repo(tmp_path / "repo", repo.root / "media")
    for sid in IDS:
        other.write(sid, KO_EN + ([{"code": "ja", "audio": "../media/ja.m4a"}]
                                  if sid == 11 else []))
    sections = engine.load([other.manifests])
    from_index = make_plan(sections, observe(open_store(url), sections, inputs=InputReader()))
    from_reads = make_plan(sections, observe(NoIndex(open_store(url)), sections,
                                             inputs=InputReader()))
    assert from_index == from_reads
    assert [(a.type, a.language) for a in from_index.sections[0].actions] == [
        ("package_audio", "ja"), ("write_master", None)]


def _mutate(how: str, store, sid: int) -> tuple[str, str] | None:
    """Change section `sid` behind the index's back; returns the (action, language) the plan
    must then have."""
    en = layout.audio_dir(sid, "en")
    playlist = en + layout.AUDIO_PLAYLIST
    if how == "etag":  # the playlist names a segment that is not there
        body, info = store.get(playlist)
        store.put_bytes(playlist, body.replace(b"#EXT-X-ENDLIST", b"#EXTINF:4.0,\na_999.m4s\n"
                                               b"#EXT-X-ENDLIST"),
                        layout.PLAYLIST_META.stamped(info.meta.user_metadata))
        return ("package_audio", "en")
    if how == "copy":  # a metadata repair by CopyObject: same ETag, LastModified moves
        time.sleep(1.1)  # S3's LastModified has one-second resolution
        store.set_meta(en + "a_001.m4s", layout.ObjectMeta("text/plain", "no-cache"))
        return ("fix_metadata", "en")
    if how == "extra":
        store.put_bytes(en + "stray.txt", b"x", layout.ObjectMeta("text/plain", "no-cache"))
        return None
    if how == "missing":
        store.delete([en + "a_001.m4s"])
        return ("package_audio", "en")
    raise AssertionError(how)


@pytest.mark.parametrize("how,sid", [("etag", 12), ("copy", 13), ("extra", 14),
                                     ("missing", 15)])
def test_a_section_whose_listing_differs_from_its_record_is_read(scratch_catalogue, how, sid):
    url, _, sections = scratch_catalogue
    store = open_store(url)
    before = store.get(layout.STATE_INDEX_KEY)[1].etag
    expected = _mutate(how, store, sid)
    counting = CountingStore(store)
    observed = observe(counting, sections, inputs=InputReader())
    assert not observed[sid].indexed
    assert observed[11].indexed and observed[16].indexed  # the others still from the record
    assert counting.calls["get"] >= 1 + 1 + 2 * 3  # index, then master, playlists, inits
    full = observe(NoIndex(store), sections, inputs=InputReader())
    assert signature(observed[sid]) == signature(full[sid])
    plan = make_plan(sections, observed)
    assert plan == make_plan(sections, full)
    acted = {(a.type, a.language) for sp in plan.sections if sp.section_id == sid
             for a in sp.actions}
    assert expected is None or expected in acted, acted
    assert store.get(layout.STATE_INDEX_KEY)[1].etag == before  # planning writes nothing


def test_an_unreadable_index_is_ignored_and_the_next_apply_replaces_it(repo, tmp_path):
    repo.write(11, KO_EN)
    url = f"file://{tmp_path / 'store'}"
    assert reconcile("--apply", repo.manifests, "--store", url).code == 0
    store = open_store(url)
    sections = engine.load([repo.manifests])
    assert observe(store, sections, inputs=InputReader())[11].indexed
    for junk in (b"not gzip", layout.STATE_INDEX_KEY.encode()):
        store.put_bytes(layout.STATE_INDEX_KEY, junk, layout.STATE_INDEX_META)
        observed = observe(store, sections, inputs=InputReader())
        assert not observed[11].indexed and not make_plan(sections, observed).has_changes
    import gzip
    import json
    store.put_bytes(layout.STATE_INDEX_KEY, gzip.compress(json.dumps(
        {"version": 99, "sections": {}}).encode()), layout.STATE_INDEX_META)
    assert load_index(store) == {}
    assert not observe(store, sections, inputs=InputReader())[11].indexed
    # An apply with nothing to change records what it read in full.
    assert reconcile("--apply", repo.manifests, "--store", url).code == 0
    assert observe(store, sections, inputs=InputReader())[11].indexed


class RacingStore:
    """Another apply writes its own section's record just before each of our index writes."""

    def __init__(self, inner, rival: int, times: int) -> None:
        self.inner, self.url, self.rival, self.times = inner, inner.url, rival, times
        self.puts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_bytes(self, key, body, meta, **conditions):
        if key == layout.STATE_INDEX_KEY and self.times:
            self.times -= 1
            update_index(self.inner, {self.rival: {"objects": {}, "by": self.times}})
        self.puts += 1
        return self.inner.put_bytes(key, body, meta, **conditions)


def test_concurrent_index_writers_merge_their_sections(scratch_catalogue):
    url, _, _ = scratch_catalogue
    store = open_store(url)
    mine = load_index(store)[11]
    racing = RacingStore(store, rival=99, times=2)
    update_index(racing, {11: {**mine, "note": "mine"}})
    assert racing.puts == 3  # two conditional writes lost (412), the third merged
    index = load_index(store)
    assert index[11]["note"] == "mine" and index[99] == {"objects": {}, "by": 0}
    assert set(IDS) <= set(index)  # nobody's record was lost
    with pytest.raises(StoreError):
        update_index(RacingStore(store, rival=98, times=10), {11: mine})
    update_index(store, {11: mine, 98: None, 99: None})
    assert set(load_index(store)) == set(IDS)


class FailingIndex:
    """A store whose index cannot be written (e.g. a policy without that prefix)."""

    def __init__(self, inner) -> None:
        self.inner, self.url = inner, inner.url

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_bytes(self, key, body, meta, **conditions):
        if key == layout.STATE_INDEX_KEY:
            raise PreconditionFailed("PUT index: denied") if conditions.get(
                "if_match") == "never" else StoreError(f"PUT {key}: AccessDenied")
        return self.inner.put_bytes(key, body, meta, **conditions)


def test_an_index_that_cannot_be_written_never_fails_the_apply(repo, tmp_path):
    repo.write(11, KO_EN)
    store = FailingIndex(open_store(f"file://{tmp_path / 'store'}"))
    settings = engine.Settings.from_env(f"file://{tmp_path / 'store'}", tmp_dir=tmp_path / "t")
    outcome = engine.Reconciler(settings, store=store).apply(engine.load([repo.manifests]))
    assert outcome.ok, outcome.errors
    warnings = [w for r in outcome.results for w in r.warnings]
    assert any("state index not updated" in w for w in warnings), warnings
    assert store.get(layout.STATE_INDEX_KEY) is None


def test_adding_a_language_trusts_what_the_run_wrote_and_deleting_a_section_drops_it(
        repo, tmp_path):
    """The record an apply writes describes the section as a full read finds it, with the
    objects of this run known (no HEAD of its segments next time); a deleted section loses
    its record."""
    repo.write(11, KO_EN)
    repo.write(12, KO_EN)
    url = f"file://{tmp_path / 'store'}"
    assert reconcile("--apply", repo.manifests, "--store", url).code == 0
    repo.write(11, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])
    assert reconcile("--apply", repo.manifests, "--store", url).code == 0
    store = open_store(url)
    sections = engine.load([repo.manifests])
    counting = CountingStore(store)
    observed = observe(counting, sections, inputs=InputReader())
    assert observed[11].indexed and dict(counting.calls) == {"get": 1, "list": 1}
    full = observe(NoIndex(store), sections, inputs=InputReader())
    assert signature(observed[11]) == signature(full[11])
    assert not make_plan(sections, observed).has_changes

    (repo.manifests / "section-12.yaml").unlink()
    settings = engine.Settings.from_env(url, tmp_dir=tmp_path / "t")
    rec = engine.Reconciler(settings)
    outcome = rec.apply(engine.load([repo.manifests]), {12: "manifests/section-12.yaml"},
                        options=PlanOptions(prune=True, allow_empty=True))
    assert outcome.ok and not store.list(layout.section_prefix(12))
    assert set(load_index(store)) == {11}


def test_many_sections_are_listed_with_one_list_and_few_with_one_each(tmp_path):
    """Without requests per section when many are in scope; a few keep their own LISTs
    (a LIST of a big catalogue costs a page per 1,000 objects of all of it)."""
    from reconciler.observe import one_list

    index = {sid: {"objects": dict.fromkeys(map(str, range(400)))} for sid in range(1000)}
    assert not one_list(index, 3) and not one_list(index, 400) and one_list(index, 402)
    assert not one_list({}, 10) and one_list({}, 400)
    store = open_store(f"file://{tmp_path}")
    for sid in range(3):
        store.put_bytes(layout.master_key(sid), b"#EXTM3U\n", layout.PLAYLIST_META)
    counting = CountingStore(store)
    observe(counting, [], extra_ids=[0, 1, 2], inputs=InputReader())
    assert counting.calls["list"] == 3  # no index: three sections are three LISTs
    update_index(store, {0: {"objects": {}}})  # a (stale) record: the catalogue is small
    counting = CountingStore(store)
    observed = observe(counting, [], extra_ids=[0, 1, 2], inputs=InputReader())
    assert counting.calls["list"] == 1 and set(observed) == {0, 1, 2}
    assert all(set(observed[sid].objects) == {layout.master_key(sid)} for sid in range(3))
    assert not observed[0].indexed  # a record that does not match is not used


@pytest.mark.parametrize("name", ["master.m3u8", "audio/en/init.mp4"])
def test_a_copy_object_at_once_after_an_apply_is_seen_by_the_next_plan(repo, bucket, s3, name):
    """A metadata change by another tool straight after an apply (the same second as the
    apply's last writes, where LIST shows nothing moved) is not hidden by the record: the apply
    records only once its last second is over, after HEADing what it wrote in it."""
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    key = f"{layout.section_prefix(11)}{name}"
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                   MetadataDirective="REPLACE", ContentType="text/plain")
    planned = reconcile("--plan", repo.manifests)
    assert planned.code == 2, planned.stdout
    assert key.rsplit("/", 1)[-1] in planned.stdout


def test_an_index_that_inflates_past_the_cap_reads_as_no_index(monkeypatch):
    """A gzip bomb (or any huge body) at the index key is not inflated into memory."""
    import gzip

    from reconciler import state

    body = gzip.compress(b'{"version": 1, "sections": {}}' + b" " * 1_000_000)
    assert state._decode(body) == {}
    assert state._decode(body[:-20]) is None  # truncated
    monkeypatch.setattr(state, "MAX_DECODED", 64 * 1024)
    assert state._decode(body) is None
