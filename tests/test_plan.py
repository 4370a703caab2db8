"""The plan as a pure function of (desired, observed): no store, no ffmpeg, no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import layout
from reconciler.hls import MediaPlaylist, Segment, parse_master
from reconciler.inputs import InputState
from reconciler.manifest import VIDEO_TRACK, DubbingSettings, Language, Section, Source
from reconciler.master import compose_master, observed_facts
from reconciler.mp4 import TrackInfo
from reconciler.observed import (
    STAMP_FRAME_RATE,
    STAMP_SETTINGS,
    STAMP_SOURCE,
    ObservedSection,
    Rendition,
)
from reconciler.packager import AUDIO_SETTINGS, VIDEO_SETTINGS
from reconciler.plan import Change, Kind, PlanError, PlanOptions, Problem
from reconciler.planfile import plan_dict, plan_from_dict
from reconciler.planner import audio_source_id, make_plan, video_source_id
from reconciler.render import action_line, plan_text
from reconciler.store import ObjectInfo

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)
VIDEO = Source("s3", "s3://uploads/11/source.mp4")
EN = Source("file", "./en.mp3", Path("/repo/en.mp3"))


def section(*langs: Language, sid: int = 11) -> Section:
    return Section(sid, VIDEO, tuple(langs), f"manifests/{sid}.yaml", "auto", DubbingSettings())


KO = Language("ko", "Korean", True, VIDEO_TRACK)
EN_L = Language("en", "English", False, EN)
JA_DUB = Language("ja", "Japanese", False, None)


def info(key: str, *, size: int = 40_000, lm: datetime = T0, meta=None, metadata=None,
         headers: bool = True):
    m = meta or layout.meta_for(key) or layout.ObjectMeta("application/json", "no-store")
    return ObjectInfo(key, size, f"etag-{len(key)}", lm,
                      m.stamped(metadata or {}) if headers else None)


def add_rendition(obs: ObservedSection, language: str | None, source_id: str,
                  settings: str, segments: int = 2, durations: float = 4.0) -> None:
    directory = layout.rendition_dir(obs.section_id, language)
    tmpl = layout.VIDEO_SEGMENT_TEMPLATE if language is None else layout.AUDIO_SEGMENT_TEMPLATE
    names = [tmpl % i for i in range(segments)]
    playlist = MediaPlaylist(4, tuple(Segment(n, durations) for n in names))
    stamp = {STAMP_SOURCE: source_id, STAMP_SETTINGS: settings}
    if language is None:
        stamp[STAMP_FRAME_RATE] = "24"
    p_key = directory + layout.playlist_name(language)
    p_info = info(p_key, size=300, lm=T1, metadata=stamp)
    track = (TrackInfo("video", "avc1.64001f", width=320, height=180) if language is None
             else TrackInfo("audio", "mp4a.40.2", channels=2, sample_rate=48000))
    rend = Rendition(language, playlist, p_info, track)
    obs.objects[p_key] = p_info
    obs.objects[directory + layout.INIT] = info(directory + layout.INIT, size=800)
    for n in names:
        obs.objects[directory + n] = info(directory + n, headers=False)
    if language is None:
        obs.video = rend
    else:
        obs.audio[language] = rend


def converged(sec: Section) -> ObservedSection:
    """The store state a successful apply of `sec` leaves behind."""
    obs = ObservedSection(sec.section_id, {})
    obs.video_input = InputState("s3:videoetag:123")
    obs.audio_inputs = {lang.code: InputState("sha256:" + lang.code) for lang in sec.languages
                        if lang.audio is not None and lang.audio.kind != "video"}
    ref = video_source_id(obs)
    add_rendition(obs, None, ref, VIDEO_SETTINGS)
    for lang in sec.languages:
        add_rendition(obs, lang.code, audio_source_id(sec, lang, obs, ref), AUDIO_SETTINGS)
    set_master(obs, sec)
    return obs


def set_master(obs: ObservedSection, sec: Section, languages=None) -> None:
    video = observed_facts(obs, obs.video)
    audio = {c: observed_facts(obs, r) for c, r in obs.audio.items()
             if languages is None or c in languages}
    obs.master_text = compose_master(sec, video, audio)
    key = layout.master_key(sec.section_id)
    obs.objects[key] = info(key, size=len(obs.master_text), lm=T1)


def kinds(plan) -> list[tuple[str, str, str | None]]:
    return [(a.type.value, a.change, a.language) for s in plan.sections for a in s.actions]


def empty(sec: Section) -> ObservedSection:
    obs = ObservedSection(sec.section_id, {})
    obs.video_input = InputState("s3:videoetag:123")
    obs.audio_inputs = {"en": InputState("sha256:en")}
    return obs


def test_empty_store_plans_everything_in_order_with_one_master_invalidation():
    sec = section(KO, EN_L)
    plan = make_plan([sec], {11: empty(sec)})
    assert kinds(plan) == [
        ("package_video", "create", None),
        ("package_audio", "create", "ko"),
        ("package_audio", "create", "en"),
        ("write_master", "create", None),
    ]
    assert plan.invalidation_paths == ("/assets/curriculumsection/11/master.m3u8",)
    assert plan.counts() == {"create": 4, "update": 0, "delete": 0, "replace": 0}
    assert plan.sections[0].languages_after == ("ko", "en")


def test_converged_section_plans_nothing():
    sec = section(KO, EN_L)
    plan = make_plan([sec], {11: converged(sec)})
    assert not plan.has_changes and not plan.has_errors
    assert plan.invalidation_paths == ()


def test_new_language_plans_only_that_audio_and_master():
    old = section(KO, EN_L)
    obs = converged(old)
    new = section(KO, EN_L, Language("de", "German", False, Source("file", "./de.mp3",
                                                                     Path("/repo/de.mp3"))))
    obs.audio_inputs["de"] = InputState("sha256:de")
    plan = make_plan([new], {11: obs})
    assert kinds(plan) == [("package_audio", "create", "de"), ("write_master", "update", None)]
    (master,) = plan.sections[0].actions_of(Kind.WRITE_MASTER)
    assert dict(master.detail)["languages"] == "ko, en -> ko, en, de"
    assert plan.invalidation_paths == ("/assets/curriculumsection/11/master.m3u8",)


def test_wrong_metadata_is_fixed_in_place_and_nothing_else():
    sec = section(KO, EN_L)
    obs = converged(sec)
    key = layout.audio_dir(11, "en") + "init.mp4"
    obs.objects[key] = info(key, meta=layout.ObjectMeta("binary/octet-stream",
                                                       layout.IMMUTABLE_CACHE, ""))
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("fix_metadata", "update", "en")]
    (action,) = plan.sections[0].actions
    assert action.keys == (key,)
    assert dict(action.detail) == {"Content-Type": "binary/octet-stream -> video/mp4",
                                   "SSE": "(none) -> AES256"}
    assert plan.invalidation_paths == ()  # metadata fixes keep the bytes: nothing to purge


def test_objects_whose_headers_are_unknown_are_not_guessed_at():
    sec = section(KO)
    obs = converged(sec)
    seg = layout.video_dir(11) + "v_000.m4s"
    assert obs.objects[seg].meta is None
    assert not make_plan([sec], {11: obs}).has_changes


def test_incomplete_rendition_is_rebuilt_and_its_path_invalidated():
    sec = section(KO, EN_L)
    obs = converged(sec)
    del obs.objects[layout.audio_dir(11, "en") + "a_001.m4s"]
    obs.audio["en"].problems.append("1 segment(s) missing, first a_001.m4s")
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("package_audio", "update", "en"), ("write_master", "update", None)]
    assert "/assets/curriculumsection/11/audio/en/*" in plan.invalidation_paths


def test_changed_input_rebuilds_that_language():
    sec = section(KO, EN_L)
    obs = converged(sec)
    obs.audio_inputs["en"] = InputState("sha256:new-en")
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("package_audio", "update", "en"), ("write_master", "update", None)]
    assert plan.sections[0].actions[0].reason == "input changed"
    # A rebuilt rendition replaces its objects: Terraform's -/+, not an in-place ~.
    assert "  -/+ package audio en  (input changed)\n" in plan_text(plan)


def test_changed_video_rebuilds_video_and_every_language():
    sec = section(KO, EN_L)
    obs = converged(sec)
    obs.video_input = InputState("s3:new-etag:999")
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [
        ("package_video", "update", None),
        ("package_audio", "update", "ko"),
        ("package_audio", "update", "en"),
        ("write_master", "update", None),
    ]
    assert set(plan.invalidation_paths) == {
        "/assets/curriculumsection/11/master.m3u8",
        "/assets/curriculumsection/11/video/*",
        "/assets/curriculumsection/11/audio/ko/*",
        "/assets/curriculumsection/11/audio/en/*",
    }


def test_settings_change_rebuilds():
    sec = section(KO)
    obs = converged(sec)
    p_info = obs.audio["ko"].playlist_info
    p_info = replace(p_info, meta=p_info.meta.stamped({STAMP_SETTINGS: "audio:old"}))
    obs.audio["ko"].playlist_info = obs.objects[p_info.key] = p_info
    plan = make_plan([sec], {11: obs})
    assert kinds(plan)[0] == ("package_audio", "update", "ko")
    assert "packaging settings changed" in plan.sections[0].actions[0].reason


def test_unreadable_video_input_without_rendition_is_an_error_not_an_action():
    sec = section(KO)
    obs = empty(sec)
    obs.video_input = InputState(None, "s3://uploads/11/source.mp4: no such object")
    plan = make_plan([sec], {11: obs})
    assert plan.has_errors and not plan.has_changes
    assert plan.sections[0].errors == (
        PlanError(11, None, Problem.VIDEO, "s3://uploads/11/source.mp4: no such object"),)
    assert plan_text(plan).count("! error: video: s3://uploads/11/source.mp4: no such object") == 1


def test_unreadable_video_input_is_fine_when_the_rendition_exists():
    sec = section(KO, EN_L)
    obs = converged(sec)
    obs.video_input = InputState(None, "gone")
    plan = make_plan([sec], {11: obs})
    assert not plan.has_changes and not plan.has_errors


def test_one_bad_language_input_is_reported_while_others_proceed():
    sec = section(KO, EN_L)
    obs = empty(sec)
    obs.audio_inputs["en"] = InputState(None, "./en.mp3: no such file")
    plan = make_plan([sec], {11: obs})
    assert ("package_audio", "create", "ko") in kinds(plan)
    assert ("package_audio", "create", "en") not in kinds(plan)
    [error] = plan.sections[0].errors
    assert (error.section, error.language, error.kind) == (11, "en", Problem.AUDIO)
    assert (str(error), error.what) == ("en: audio ./en.mp3: no such file",
                                        "audio ./en.mp3: no such file")
    assert plan_from_dict(plan_dict(plan)).sections[0].errors == (error,)
    assert plan_dict(plan)["sections"][0]["errors"] == ["en: audio ./en.mp3: no such file"]
    assert plan.sections[0].languages_after == ("ko",)


def test_removed_language_drops_from_master_and_objects_are_kept_without_prune():
    full = section(KO, EN_L)
    obs = converged(full)
    plan = make_plan([section(KO)], {11: obs})
    assert kinds(plan) == [("write_master", "update", None)]
    assert any("use --prune" in n for n in plan.sections[0].notes)


def test_removed_language_is_deleted_with_prune():
    full = section(KO, EN_L)
    obs = converged(full)
    plan = make_plan([section(KO)], {11: obs}, PlanOptions(prune=True))
    assert kinds(plan) == [("write_master", "update", None), ("delete_objects", "delete", "en")]
    delete = plan.sections[0].actions_of(Kind.DELETE_OBJECTS)[0]
    assert all(k.startswith(layout.audio_dir(11, "en")) for k in delete.keys)
    assert len(delete.keys) == 4  # playlist, init, two segments
    assert plan.counts()["delete"] == 1


def test_plan_options_and_changes_are_typed_through_the_saved_form():
    """A saved plan gives back its options as booleans and its changes as the enum (the CLI
    used to read the options back as the strings "True"/"False")."""
    full = section(KO, EN_L)
    plan = make_plan([section(KO)], {11: converged(full)}, PlanOptions(prune=True))
    doc = plan_dict(plan)
    assert doc["options"] == {"prune": True, "allowEmpty": False, "replace": [],
                              "adoptOnly": False}
    again = plan_from_dict(doc)
    assert again.options == PlanOptions(prune=True, allow_empty=False)
    assert [a.change for a in again.sections[0].actions] == [Change.UPDATE, Change.DELETE]
    doc["options"]["prune"] = "True"  # what an older reconciler wrote: refused, not guessed
    with pytest.raises(ValueError, match="prune is not a known true/false option"):
        plan_from_dict(doc)


def test_master_content_drift_is_rewritten():
    sec = section(KO, EN_L)
    obs = converged(sec)
    obs.master_text = obs.master_text.replace("DEFAULT=YES", "DEFAULT=NO")
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("write_master", "update", None)]
    assert plan.sections[0].actions[0].reason == "content differs"


def test_master_metadata_alone_is_fixed_in_place():
    sec = section(KO)
    obs = converged(sec)
    key = layout.master_key(11)
    obs.objects[key] = info(key, meta=layout.ObjectMeta("text/plain", "no-cache"))
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("fix_metadata", "update", None)]


def test_target_duration_mismatch_rewrites_the_odd_playlist():
    sec = section(KO)
    obs = converged(sec)
    obs.video = replace(obs.video, playlist=MediaPlaylist(
        6, tuple(Segment(f"v_00{i}.m4s", 6.0) for i in range(2))))
    set_master(obs, sec)
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("rewrite_playlist", "update", "ko")]
    assert "EXT-X-TARGETDURATION 4 -> 6" in plan.sections[0].actions[0].reason


def test_dub_is_an_action_with_billable_minutes_unless_cached_or_in_progress():
    sec = section(KO, JA_DUB)
    obs = converged(section(KO))
    obs.video.playlist = MediaPlaylist(4, tuple(Segment(f"v_{i:03d}.m4s", 4.0)
                                                for i in range(2)))
    plan = make_plan([sec], {11: obs})
    assert kinds(plan) == [("dub", "create", "ja"), ("package_audio", "create", "ja"),
                           ("write_master", "update", None)]
    assert plan.dub_minutes == pytest.approx(8 / 60, abs=0.01)

    key = plan.sections[0].actions[0].source_id
    audio_prefix, job = layout.dub_cache_keys(11, "ja", key)
    obs.dub_cache = {job: info(job)}
    obs.dub_jobs = {job: {"name": "section-11-ja-x", "dubbing_id": "d1"}}
    resumed = make_plan([sec], {11: obs})
    assert resumed.sections[0].actions[0].reason == "resume dub d1 an earlier run started"
    assert resumed.dub_minutes == 0

    obs.dub_cache = {audio_prefix + "mp3": info(audio_prefix + "mp3")}
    cached = make_plan([sec], {11: obs})
    assert kinds(cached) == [("package_audio", "create", "ja"), ("write_master", "update", None)]
    assert any("reused from cache" in n for n in cached.sections[0].notes)


def test_dub_record_without_an_id_is_billed_in_full_not_resumed_for_free():
    """A create that failed (or whose answer was lost, and ElevenLabs does not know its name)
    leaves a record with a name only: the next dub is a paid create, and the plan says so."""
    sec = section(KO, JA_DUB)
    obs = converged(section(KO))
    obs.video.playlist = MediaPlaylist(4, tuple(Segment(f"v_{i:03d}.m4s", 4.0)
                                                for i in range(2)))
    key = make_plan([sec], {11: obs}).sections[0].actions[0].source_id
    _, job = layout.dub_cache_keys(11, "ja", key)
    for record in ({"name": "section-11-ja-x"}, {}):  # name only; unreadable record
        obs.dub_cache = {job: info(job)}
        obs.dub_jobs = {job: record}
        plan = make_plan([sec], {11: obs})
        dub = plan.sections[0].actions[0]
        assert (dub.type, dub.reason) == (Kind.DUB, "an earlier create left no dub id: dub again")
        assert plan.dub_minutes == pytest.approx(8 / 60, abs=0.01)


def test_dub_with_unknown_minutes_is_a_named_error_and_not_planned():
    sec = section(KO, JA_DUB)
    obs = converged(section(KO))
    obs.video = Rendition(None)  # not packaged yet, and the video's duration is unreadable
    obs.video_duration = None
    plan = make_plan([sec], {11: obs})
    sp = plan.sections[0]
    assert "ja: dub: billable minutes unknown (the video's duration cannot be read); " \
        "not dubbed" in map(str, sp.errors)
    assert [(e.language, e.kind) for e in sp.errors] == [("ja", Problem.DUB)]
    assert not sp.actions_of(Kind.DUB) and "ja" not in sp.languages_after
    assert plan.unpriced_dubs == ["section 11: ja"] and plan.has_errors
    assert plan_from_dict(plan_dict(plan)).unpriced_dubs == ["section 11: ja"]


def test_dub_key_depends_on_video_language_and_settings():
    sec = section(KO, JA_DUB)
    obs = converged(section(KO))
    ref = video_source_id(obs)
    base = audio_source_id(sec, JA_DUB, obs, ref)
    assert base == audio_source_id(sec, JA_DUB, obs, ref)
    assert base != audio_source_id(sec, JA_DUB, obs, "other-video")
    assert base != audio_source_id(replace(sec, dubbing=DubbingSettings(2, False)), JA_DUB,
                                   obs, ref)
    assert base != audio_source_id(sec, replace(JA_DUB, code="fr"), obs, ref)


def test_observation_error_is_reported_per_section():
    a, b = section(KO), section(KO, sid=12)
    plan = make_plan([a, b], {11: ObservedSection(11, {}, error="observe failed: boom"),
                              12: empty(b)})
    assert plan.sections[0].errors == (
        PlanError(11, None, Problem.OBSERVE, "observe failed: boom"),)
    assert plan.sections[1].actions


def test_compose_master_falls_back_to_first_ready_language_as_default():
    sec = section(KO, EN_L)
    obs = converged(sec)
    text = compose_master(sec, observed_facts(obs, obs.video),
                          {"en": observed_facts(obs, obs.audio["en"])})
    media_lines = parse_master(text).media
    assert [(m["LANGUAGE"], m["DEFAULT"]) for m in media_lines] == [("en", "YES")]


def test_a_deleted_sections_removal_names_its_prefix_not_audio_none():
    """Issue 12: the text view printed `delete objects audio/None/ (2)` for a deleted manifest."""
    from reconciler.removal import plan_removed_section

    keys = [layout.master_key(11), layout.section_prefix(11) + "video/init.mp4"]
    obs = ObservedSection(11, {k: info(k) for k in keys})
    sp = plan_removed_section(11, "manifests/11.yaml", obs,
                              PlanOptions(prune=True, allow_empty=True))
    line = action_line(11, sp.actions[0])
    assert line == f"- delete objects {layout.section_prefix(11)} (2)  (manifest deleted)"
    assert "None" not in line


def test_replace_rebuilds_a_converged_rendition_and_dubs_anew_past_the_cache():
    """`--replace 11/ja`: a converged dubbed language is dubbed anew (billed, `-/+`) although
    its dub is cached; an earlier replacement's own record is resumed unpaid, never the record
    of the dub being replaced."""
    sec = section(KO, JA_DUB)
    obs = converged(sec)
    key = audio_source_id(sec, JA_DUB, obs, video_source_id(obs))
    audio_prefix, job = layout.dub_cache_keys(11, "ja", key)
    obs.dub_cache = {audio_prefix + "mp3": info(audio_prefix + "mp3")}
    assert kinds(make_plan([sec], {11: obs})) == []
    options = PlanOptions(replace=("11/ja",))
    plan = make_plan([sec], {11: obs}, options)
    assert kinds(plan) == [("dub", "replace", "ja"), ("package_audio", "replace", "ja"),
                           ("write_master", "update", None)]
    assert plan.dub_minutes == pytest.approx(8 / 60, abs=0.01)
    assert action_line(11, plan.sections[0].actions[1]) == \
        "-/+ package audio ja  (replace requested)"
    assert plan.counts()["replace"] == 2
    assert set(plan.invalidation_paths) == {layout.cdn_path(layout.master_key(11)),
                                            layout.cdn_folder(layout.audio_dir(11, "ja"))}
    assert plan_from_dict(plan_dict(plan)) == plan  # the saved form keeps it

    obs.dub_cache[job] = info(job)
    for record, minutes in (({"dubbing_id": "old"}, 8 / 60),  # the replaced dub's: not resumed
                            ({"dubbing_id": "new", "replacement": True}, 0.0)):
        obs.dub_jobs = {job: record}
        assert make_plan([sec], {11: obs}, options).dub_minutes == pytest.approx(minutes,
                                                                               abs=0.01)


def test_replace_of_the_video_rebuilds_every_language_without_a_new_dub():
    sec = section(KO, EN_L, JA_DUB)
    obs = converged(sec)
    key = audio_source_id(sec, JA_DUB, obs, video_source_id(obs))
    audio_prefix, _job = layout.dub_cache_keys(11, "ja", key)
    obs.dub_cache = {audio_prefix + "mp3": info(audio_prefix + "mp3")}
    plan = make_plan([sec], {11: obs}, PlanOptions(replace=("11/video",)))
    assert kinds(plan) == [("package_video", "replace", None),
                           ("package_audio", "replace", "ko"), ("package_audio", "replace", "en"),
                           ("package_audio", "replace", "ja"), ("write_master", "update", None)]
    assert plan.dub_minutes == 0


def test_the_manifests_digest_counts_subtitles():
    """A saved plan's manifest check: adding, changing or dropping a language's subtitles is a
    changed manifest (the digest once left subtitles out)."""
    from reconciler.manifest import DUB_TRANSCRIPT
    from reconciler.planfile import manifests_digest

    srt = Source("file", "./en.srt", Path("/repo/en.srt"))
    digests = {manifests_digest([section(KO, replace(EN_L, subtitles=subs))])
               for subs in (None, srt, DUB_TRANSCRIPT)}
    assert len(digests) == 3


# One other value for every field of a section and a language: a field added later without
# an entry here fails the test below, so nobody adds one the saved-plan check would not see.
OTHER_VALUES = {
    "section_id": 12, "video": Source("s3", "s3://uploads/11/other.mp4"), "languages": (KO,),
    "source_language": "ko", "dubbing": DubbingSettings(num_speakers=2),
    "code": "en-GB", "name": "British", "default": True, "audio": None,
    "subtitles": Source("file", "./en.vtt", Path("/repo/en.vtt")), "fit": "pad",
}


def test_every_field_of_a_manifest_changes_its_digest_but_where_it_lives_does_not():
    from dataclasses import fields

    from reconciler.planfile import MACHINE_FIELDS, manifests_digest

    base = section(KO, EN_L)
    digest = manifests_digest([base])
    checked = {f.name for f in fields(Section) + fields(Language)} - MACHINE_FIELDS
    assert checked == set(OTHER_VALUES)
    for name in sorted(checked):
        changed = (replace(base, **{name: OTHER_VALUES[name]}) if name in
                   {f.name for f in fields(Section)}
                   else replace(base, languages=(KO, replace(EN_L, **{name: OTHER_VALUES[name]}))))
        assert manifests_digest([changed]) != digest, name
    moved = replace(base, file="elsewhere/11.yaml",
                    languages=(KO, replace(EN_L, audio=replace(EN, path=Path("/ci/en.mp3")))))
    assert manifests_digest([moved]) == digest
