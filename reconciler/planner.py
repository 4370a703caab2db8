"""desired x observed -> Plan (plan.py holds the plan's data). Pure: no I/O, no clock, no
randomness; exhaustively unit-tested. Each section's planner compares what a manifest declares
with what observe found and says, per rendition, what apply must do and why."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import replace

from . import layout, subtitles
from .adoption import Check, adopt_only, check_audio, check_video
from .hls import section_target
from .manifest import Language, Section
from .master import compose_master, observed_facts
from .observed import (
    STAMP_ADOPTED,
    STAMP_FRAME_RATE,
    STAMP_SETTINGS,
    STAMP_SOURCE,
    ObservedSection,
    Rendition,
)
from .packager import AUDIO_SETTINGS, VIDEO_SETTINGS
from .plan import (
    REBUILT,
    REPLACE_REASON,
    REPLACEMENT,
    SUBTITLES,
    VIDEO,
    Action,
    Change,
    Kind,
    PendingInvalidation,
    Plan,
    PlanError,
    PlanOptions,
    Problem,
    SectionPlan,
    UnknownReplacement,
)
from .removal import mass_prune_guard, plan_removed_section

# -- identities -----------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def dub_key(section: Section, language: str, video_ref: str) -> str:
    """What determines a dub: the video's content, the target language, the dub settings."""
    d = section.dubbing
    return _digest(
        "dub-v1", video_ref, language, section.source_language, str(d.num_speakers),
        str(d.watermark).lower(),
    )


def audio_source_id(section: Section, lang: Language, obs: ObservedSection,
                    video_ref: str) -> str | None:
    """Identity of what a language's audio is built from (None when its input is unreadable).
    `video_ref` identifies the video rendition: audio is aligned to it, so a new video means new
    audio. For a dubbed language this is the dub key, which also names its cache object."""
    if lang.audio is None:
        return dub_key(section, lang.code, video_ref)
    if lang.audio.kind == "video":
        return _digest("video-track", video_ref)
    state = obs.audio_inputs.get(lang.code)
    if state is None or state.identity is None:
        return None
    return _digest("file", state.identity, video_ref)


def subtitles_source_id(section: Section, lang: Language, obs: ObservedSection,
                        video_ref: str) -> str | None:
    """Identity of a subtitle rendition: its file (or the transcript it is) and the video it
    is cut to; None when the file is unreadable."""
    if lang.subtitles is not None and lang.subtitles.kind == "dub":
        dubbed, spoken = section.transcript_of(lang)
        return _digest("subtitles", layout.transcript_key(section.section_id, dubbed,
                                                   dub_key(section, dubbed, video_ref), spoken),
                       video_ref)
    state = obs.subtitle_inputs.get(lang.code)
    if state is None or state.identity is None:
        return None
    return _digest("subtitles", state.identity, video_ref)


def video_source_id(obs: ObservedSection) -> str | None:
    if obs.video_input is None or obs.video_input.identity is None:
        return None
    return _digest("video", obs.video_input.identity)


# -- replacing what is up to date (`--replace`) ---------------------------------------------


def replace_targets(addresses: Collection[str], sections: Collection[Section]) -> tuple[str, ...]:
    """The `--replace` addresses ("11/ja", "11/video", "11/subtitles/en"), checked against the
    sections planned and written as the planner matches them (the manifest's spelling of the
    language); UnknownReplacement names the first that is not declared."""
    by_id = {s.section_id: s for s in sections}
    out: list[str] = []
    for address in addresses:
        head, _slash, what = address.strip().partition("/")
        kind, _slash, code = what.rpartition("/")
        if not head.isdigit() or not code or kind not in ("", SUBTITLES):
            raise UnknownReplacement(f"--replace {address}: not SECTION/video, SECTION/LANGUAGE "
                                     "or SECTION/subtitles/LANGUAGE")
        section = by_id.get(int(head))
        if section is None:
            raise UnknownReplacement(f"--replace {address}: section {int(head)} is not among the "
                                     "sections planned (no manifest declares it, or --section "
                                     "leaves it out)")
        if what == VIDEO:
            out.append(f"{section.section_id}/{VIDEO}")
            continue
        lang = {lang.code.lower(): lang for lang in section.languages}.get(code.lower())
        if lang is None:
            raise UnknownReplacement(f"--replace {address}: section {section.section_id}'s "
                                     f"manifest declares no language {code!r}")
        if kind and lang.subtitles is None:
            raise UnknownReplacement(f"--replace {address}: section {section.section_id}'s "
                                     f"manifest declares no subtitles for {lang.code}")
        out.append(f"{section.section_id}/{kind + '/' if kind else ''}{lang.code}")
    return tuple(dict.fromkeys(out))


# -- the diff -------------------------------------------------------------------------------


def _status(rend: Rendition, source_id: str | None,
            settings: str) -> tuple[Change | None, str]:
    """(change, reason) for a rendition: (None, "") when it is up to date."""
    if not rend.exists and not rend.problems:
        return Change.CREATE, "missing"
    if not rend.complete:
        return Change.UPDATE, "incomplete: " + "; ".join(rend.problems)
    stamp = rend.stamp
    if STAMP_SOURCE in stamp and source_id and stamp[STAMP_SOURCE] != source_id:
        return Change.UPDATE, "input changed"
    if STAMP_SETTINGS in stamp and stamp[STAMP_SETTINGS] != settings:
        return Change.UPDATE, f"packaging settings changed ({stamp[STAMP_SETTINGS]} -> {settings})"
    return None, ""


def _meta_diff(have: layout.ObjectMeta, want: layout.ObjectMeta) -> tuple[tuple[str, str], ...]:
    """Each header `have` lacks of `want`, as a plan's detail ("Content-Type", "a -> b")."""
    wanted = want.headers()
    return tuple((name, f"{value or '(none)'} -> {wanted[name] or '(none)'}")
                 for name, value in have.headers().items() if value != wanted[name])


class _SectionPlanner:
    def __init__(self, section: Section, obs: ObservedSection, options: PlanOptions) -> None:
        self.section = section
        self.observed = obs
        self.options = options
        self.actions: list[Action] = []
        self.errors: list[PlanError] = []
        self.notes: list[str] = []
        self.unpriced: list[str] = []  # dubbed languages whose billable minutes are unknown
        self.rebuilt: set[str | None] = set()  # renditions (re)built by this plan
        self.video_ref: str | None = None  # identity of the video rendition audio aligns to
        self.master_key = layout.master_key(section.section_id)
        self.ready: set[str] = set()  # languages that will be listed in master
        self.texts: set[str] = set()  # languages whose subtitles master will list
        self.texts_rebuilt: set[str] = set()
        self.video_rate: str | None = None  # the frame rate an adopted video is stamped with

    def error(self, language: str | None, kind: Problem, message: str) -> None:
        self.errors.append(PlanError(self.section.section_id, language, kind, message))

    def replacing(self, what: str) -> bool:
        """Whether `--replace` names this section's `what` (VIDEO, a language, or
        "subtitles/LANG")."""
        return f"{self.section.section_id}/{what}" in self.options.replace

    def _replaced(self, status: tuple[Change | None, str],
                  what: str) -> tuple[Change | None, str]:
        """A rendition's (change, reason), made a replacement when `--replace` names it and it
        exists (a missing one is a create anyway); a language's or subtitles' up-to-date
        rendition is replaced with the video (they are cut on its segments)."""
        change, _reason = status
        if change != Change.CREATE and self.replacing(what):
            return Change.REPLACE, REPLACE_REASON
        if change is None and what != VIDEO and self.replacing(VIDEO):
            return Change.REPLACE, "video replaced"
        return status

    def video(self) -> bool:
        """Plan the video rendition; False when the section cannot proceed."""
        source_id = video_source_id(self.observed)
        change, reason = self._replaced(_status(self.observed.video, source_id, VIDEO_SETTINGS),
                                        VIDEO)
        if (change is None and source_id is not None
                and STAMP_SOURCE not in self.observed.video.stamp):
            check = check_video(self.observed.video, self.observed.unstamped_video)
            change, reason = self.adopt(self.observed.video, source_id, check)
            self.video_rate = check.frame_rate
        if change is None:
            self.video_ref = self.observed.video.stamp.get(STAMP_SOURCE) or source_id
            if self.video_ref is None:
                self.error(None, Problem.VIDEO, "rendition has no recorded source and the "
                           "video cannot be read")
                return False
            return True
        if source_id is None:
            state = self.observed.video_input
            self.error(None, Problem.VIDEO, state.error if state else "not observed")
            return False
        self.actions.append(
            Action(Kind.PACKAGE_VIDEO, change, None, reason, source_id=source_id)
        )
        self.rebuilt.add(None)
        self.video_ref = source_id
        return True

    def language(self, lang: Language) -> None:
        rend = self.observed.rendition(lang.code)
        assert self.video_ref is not None
        source_id = audio_source_id(self.section, lang, self.observed, self.video_ref)
        change, reason = self._replaced(_status(rend, source_id, AUDIO_SETTINGS), lang.code)
        if change is None and None in self.rebuilt and rend.stamp.get(STAMP_SOURCE) != source_id:
            change, reason = Change.UPDATE, "video changed"
        if change is None and source_id is not None and STAMP_SOURCE not in rend.stamp:
            change, reason = self.adopt(rend, source_id, check_audio(rend, self.observed.video))
        if change is None:
            self.ready.add(lang.code)
            return
        if source_id is None:
            what = self.observed.audio_inputs.get(lang.code)
            self.error(lang.code, Problem.AUDIO,
                       what.error if what and what.error else "not observable")
            if rend.complete and lang.code in self.observed.master_languages():
                self.ready.add(lang.code)  # keep serving what is there
            return
        if lang.audio is None and not self._dub(lang, source_id,
                                                 anew=self.replacing(lang.code)):
            if rend.complete and lang.code in self.observed.master_languages():
                self.ready.add(lang.code)  # keep serving what is there
            return
        self.actions.append(
            Action(Kind.PACKAGE_AUDIO, change, lang.code, reason, source_id=source_id)
        )
        self.rebuilt.add(lang.code)
        self.ready.add(lang.code)

    def adopt(self, rend: Rendition, source_id: str,
              check: Check) -> tuple[Change | None, str]:
        """An unstamped rendition (another tool wrote it): rebuilt when its check fails; else
        adopted, stamped with the identity of what it is built from and what it was checked
        against (a metadata-only write), so a later change of input rebuilds it as any other."""
        if check.mismatch is not None:
            return Change.UPDATE, f"written by another tool and {check.mismatch}"
        assert rend.playlist_info is not None
        stamp = {STAMP_ADOPTED: check.against}
        if check.frame_rate:
            stamp[STAMP_FRAME_RATE] = check.frame_rate
        self.actions.append(Action(
            Kind.ADOPT, Change.UPDATE, rend.language, "written by another tool; it matches",
            keys=(rend.playlist_info.key,), source_id=source_id,
            detail=(("checked", check.against),), stamp=tuple(stamp.items())))
        return None, ""

    def subtitles(self, lang: Language) -> None:
        """Plan a language's subtitle rendition, exactly as an audio one."""
        if lang.subtitles is None:
            return
        rend = self.observed.subtitle_rendition(lang.code)
        assert self.video_ref is not None
        source_id = subtitles_source_id(self.section, lang, self.observed, self.video_ref)
        change, reason = self._replaced(_status(rend, source_id, subtitles.SETTINGS),
                                        f"{SUBTITLES}/{lang.code}")
        if change is None and lang.subtitles.kind == "dub" and self.replacing(
                dubbed := self.section.transcript_of(lang)[0]):
            change, reason = Change.REPLACE, f"transcript of the new {dubbed} dub"
        listed = change is None
        if change is not None and source_id is None:
            what = self.observed.subtitle_inputs.get(lang.code)
            self.error(lang.code, Problem.SUBTITLES,
                       what.error if what and what.error else "not observable")
            # Keep serving what is there.
            listed = rend.complete and lang.code in self.observed.master_languages("SUBTITLES")
        elif change is not None:
            transcript = ()
            if lang.subtitles.kind == "dub":
                dubbed, spoken = self.section.transcript_of(lang)
                key = dub_key(self.section, dubbed, self.video_ref)
                transcript = (layout.transcript_key(self.section.section_id, dubbed, key,
                                                    spoken),)
            self.actions.append(Action(Kind.PACKAGE_SUBTITLES, change, lang.code, reason,
                                       keys=transcript, source_id=source_id))
            self.texts_rebuilt.add(lang.code)
            listed = True
        if listed:
            self.texts.add(lang.code)

    def _dub(self, lang: Language, key: str, *, anew: bool = False) -> bool:
        """Plan a language's dub; False when it cannot be priced (so is not paid for).

        A dub an earlier run started is resumed at no cost only when its record holds the
        dubbing_id (observation fills it in when ElevenLabs knows the record's name); a record
        with a name alone is a create that may never have reached ElevenLabs: billed in full.
        `anew` (`--replace S/LANG`): the cached dub is not reused, nor a record of it; only a
        replacement dub an earlier replace started is resumed."""
        audio_prefix, job_key = layout.dub_cache_keys(self.section.section_id, lang.code, key)
        cached = [k for k in self.observed.dub_cache if k.startswith(audio_prefix) and k != job_key]
        if cached and not anew:
            self.notes.append(f"{lang.code}: dub reused from cache")
            return True
        change = Change.REPLACE if anew else Change.CREATE
        record = self.observed.dub_jobs.get(job_key, {})
        dubbing_id = record.get("dubbing_id")
        if (job_key in self.observed.dub_cache and dubbing_id
                and (record.get(REPLACEMENT) or not anew)):
            self.actions.append(
                Action(Kind.DUB, change, lang.code,
                       f"resume dub {dubbing_id} an earlier run started", source_id=key,
                       minutes=0.0)
            )
            return True
        duration = self._video_duration()
        if not duration:
            self.error(lang.code, Problem.DUB, "billable minutes unknown (the video's duration "
                       "cannot be read); not dubbed")
            self.unpriced.append(lang.code)
            return False
        if anew:
            reason = f"{REPLACE_REASON}: a new dub replaces the cached one once verified"
        elif job_key in self.observed.dub_cache:
            reason = "an earlier create left no dub id: dub again"
        else:
            reason = "no audio given: dub with ElevenLabs"
        self.actions.append(
            Action(Kind.DUB, change, lang.code, reason, source_id=key,
                   minutes=round(duration / 60, 4))
        )
        return True

    def _video_duration(self) -> float | None:
        playlist = self.observed.video.playlist
        if self.observed.video.complete and playlist is not None:
            return playlist.duration
        return self.observed.video_duration

    def metadata(self) -> None:
        rebuilt_dirs = {layout.rendition_dir(self.section.section_id, r) for r in self.rebuilt} | {
            layout.subtitles_dir(self.section.section_id, c) for c in self.texts_rebuilt}
        stamped = {k for a in self.actions if a.type == Kind.ADOPT for k in a.keys}
        for key in sorted(self.observed.objects):
            info = self.observed.objects[key]
            want = layout.meta_for(key)
            if (want is None or info.meta is None or key == self.master_key
                    or key in stamped):  # adopting writes the table's headers
                continue
            if layout.folder_of(key) in rebuilt_dirs:
                continue
            diff = _meta_diff(info.meta, want)
            if diff:
                self.actions.append(
                    Action(Kind.FIX_METADATA, Change.UPDATE, layout.audio_language_of(key),
                           "metadata differs", keys=(key,), detail=diff)
                )

    def targets(self) -> None:
        """All playlists of the section share one target duration (when none is rebuilt)."""
        if self.rebuilt or self.texts_rebuilt:
            return
        rends = [self.observed.video] + [self.observed.audio[c] for c in sorted(self.ready)] + [
            self.observed.subtitles[c] for c in sorted(self.texts)]
        playlists = [r.playlist for r in rends if r.playlist is not None]
        if not playlists:
            return
        target = section_target(playlists)
        for rend in rends:
            if rend.playlist is not None and rend.playlist.target_duration != target:
                assert rend.playlist_info is not None
                key = rend.playlist_info.key
                self.actions.append(
                    Action(Kind.REWRITE_PLAYLIST, Change.UPDATE, rend.language,
                           f"EXT-X-TARGETDURATION {rend.playlist.target_duration} -> {target}",
                           keys=(key,))
                )

    def master(self, languages: list[str]) -> None:
        key = layout.master_key(self.section.section_id)
        exists = self.observed.master is not None
        before = self.observed.master_languages()
        texts = [lang.code for lang in self.section.languages if lang.code in self.texts]
        texts_before = self.observed.master_languages("SUBTITLES")
        if not languages:
            return
        detail = (("languages", f"{', '.join(before) or '(none)'} -> {', '.join(languages)}"),)
        if texts or texts_before:
            detail += (("subtitles", f"{', '.join(texts_before) or '(none)'} -> "
                                     f"{', '.join(texts) or '(none)'}"),)
        if not exists:
            reason = "missing"
        elif self.rebuilt or self.texts_rebuilt:
            reason = "renditions changed"
        elif set(before) != set(languages):
            reason = "languages changed"
        elif set(texts_before) != set(texts):
            reason = "subtitles changed"
        else:
            reason = self._master_drift()
            if reason is None:
                info = self.observed.master
                diff = _meta_diff(info.meta, layout.PLAYLIST_META) if (
                    info is not None and info.meta is not None) else ()
                if diff:
                    self.actions.append(
                        Action(Kind.FIX_METADATA, Change.UPDATE, None, "metadata differs",
                               keys=(key,), detail=diff)
                    )
                return
        self.actions.append(
            Action(Kind.WRITE_MASTER, Change.UPDATE if exists else Change.CREATE, None, reason,
                   keys=(key,), detail=detail)
        )

    def _master_drift(self) -> str | None:
        video = observed_facts(self.observed, self.observed.video)
        audio = {c: f for c in self.ready
                 if (f := observed_facts(self.observed, self.observed.audio[c]))}
        if video is None:
            return None
        if self.video_rate:  # adopted: master states the frame rate it is stamped with
            video = replace(video, frame_rate=float(self.video_rate))
        if compose_master(self.section, video, audio, self.texts) != self.observed.master_text:
            return "content differs" if self.observed.master_text else "missing"
        return None

    def removed(self) -> None:
        """Languages no longer in the manifest: dropped from master; deleted with --prune."""
        gone = sorted(set(self.observed.audio) - {lang.code for lang in self.section.languages})
        gone = [code for code in gone if self.observed.rendition_keys(code)]
        if not gone:
            return
        if not self.options.prune:
            for code in gone:
                self.notes.append(
                    f"{code}: not in the manifest; dropped from master, "
                    f"{len(self.observed.rendition_keys(code))} object(s) kept "
                    "(use --prune to delete)"
                )
            return
        kept = [c for c in self.ready
                if c not in self.rebuilt and self.observed.rendition(c).complete]
        if not kept and not self.options.allow_empty:
            self.error(None, Problem.PRUNE, f"pruning {', '.join(gone)} would leave no published "
                       "language; pass --allow-mass-prune to allow it")
            return
        for code in gone:
            self.actions.append(
                Action(Kind.DELETE_OBJECTS, Change.DELETE, code, "language removed from manifest",
                       keys=tuple(sorted(self.observed.rendition_keys(code))))
            )

    def removed_subtitles(self) -> None:
        """Subtitle renditions the manifest no longer asks for: dropped from master; deleted
        with --prune (never the last language: the audio keeps the section served)."""
        wanted = {lang.code for lang in self.section.languages if lang.subtitles}
        gone = [c for c in sorted(set(self.observed.subtitles) - wanted)
                if self.observed.subtitle_keys(c)]
        for code in gone:
            keys = tuple(sorted(self.observed.subtitle_keys(code)))
            if self.options.prune:
                self.actions.append(Action(Kind.DELETE_OBJECTS, Change.DELETE, code,
                                           "subtitles removed from manifest", keys=keys))
            else:
                self.notes.append(f"{code}: subtitles not in the manifest; dropped from master, "
                                  f"{len(keys)} object(s) kept (use --prune to delete)")

    def run(self) -> SectionPlan:
        if self.observed.error:
            return SectionPlan(self.section.section_id, self.section.file, errors=(
                PlanError(self.section.section_id, None, Problem.OBSERVE, self.observed.error),))
        if self.video():
            for lang in self.section.languages:
                self.language(lang)
                self.subtitles(lang)
        languages = [lang.code for lang in self.section.languages if lang.code in self.ready]
        video_ok = None in self.rebuilt or self.observed.video.complete
        self.metadata()
        if video_ok:
            self.targets()
            self.master(languages)
        self.removed()
        self.removed_subtitles()
        return SectionPlan(
            self.section.section_id,
            self.section.file,
            tuple(self.actions),
            tuple(self.observed.master_languages()),
            tuple(languages) if video_ok else (),
            tuple(self.errors),
            tuple(self.notes),
            tuple(self.unpriced),
        )


def make_plan(
    desired: list[Section],
    observed: Mapping[int, ObservedSection],
    options: PlanOptions = PlanOptions(),
    removed: Mapping[int, str] | None = None,
    pending: PendingInvalidation | None = None,
    catalogue: int | None = None,
) -> Plan:
    """The actions that make the store match the manifests, section by section, plus the
    CloudFront paths the one invalidation will list. `removed` maps the ids of sections whose
    manifest was deleted to that manifest's path (or ORPHANED, DESTROY); `pending`: paths
    earlier applies left pending, which the one invalidation sends too; `catalogue` is the
    number of sections the mass-prune guard counts against (default: those planned)."""
    sections = [
        _SectionPlanner(s, observed[s.section_id], options).run() for s in desired
    ]
    sections += [
        plan_removed_section(sid, path, observed[sid], options)
        for sid, path in sorted((removed or {}).items())
    ]
    sections = mass_prune_guard(sections, len(sections) if catalogue is None else catalogue,
                                options)
    if options.adopt_only:
        sections = [adopt_only(sp) for sp in sections]
    paths: list[str] = []
    for sp in sections:
        for a in sp.actions:
            if a.type == Kind.DELETE_OBJECTS and a.language is None:
                paths.append(layout.cdn_folder(layout.section_prefix(sp.section_id)))
            elif a.type == Kind.WRITE_MASTER:
                paths.append(layout.cdn_path(layout.master_key(sp.section_id)))
            elif a.type in (Kind.PACKAGE_VIDEO, Kind.PACKAGE_AUDIO) and a.change in REBUILT:
                paths.append(layout.cdn_folder(layout.rendition_dir(sp.section_id, a.language)))
            elif a.type == Kind.PACKAGE_SUBTITLES and a.change in REBUILT:
                paths.append(layout.cdn_folder(layout.subtitles_dir(sp.section_id,
                                                                    a.language or "")))
    return Plan(tuple(sections), tuple(dict.fromkeys(paths)), options, pending)

