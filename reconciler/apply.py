"""Execute a Plan through the seams (store, packager, inputs, dubber), in the safe order.

Within a section: init and segments, then the media playlist, then master last, so master
never names an object that is not there. Phases run across sections: videos, then dubs (bounded
by the dubbing plan's concurrency), then audio, then metadata fixes and masters. A failure is
contained to its language (or, for the video, its section) and reported with the step and the
tail of ffmpeg's stderr. The one invalidation is the caller's (engine.py) job.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from . import layout, subtitles
from .dub_work import SectionDubs
from .dubbing import DubbingError
from .errors import ReconcilerError
from .hls import MediaPlaylist, parse_media, render_media, section_target
from .manifest import DUB_TRANSCRIPT, Language, Section
from .master import Facts, compose_master, observed_facts
from .mp4 import read_track
from .observed import STAMP_FRAME_RATE, STAMP_SETTINGS, STAMP_SOURCE, ObservedSection
from .packager import (
    AUDIO_SETTINGS,
    MAX_SHORTFALL,
    VIDEO_SETTINGS,
    Examined,
    MediaError,
    MediaInfo,
    OnProgress,
    OnSegment,
    check_fit,
)
from .plan import Action, Kind, Plan, SectionPlan
from .recording import Applied, Recorder
from .results import Failure, SectionResult, Step
from .runtime import Runtime, work_folder
from .section_store import SectionStore
from .store import PreconditionFailed, StoreError

# What a step may meet in normal use (errors.py): recorded as the step's failure. Anything else
# is a bug: it propagates, with its traceback, once every section's media step has ended, and
# before any master is written.
EXPECTED = ReconcilerError


def _store_for(rt: Runtime, section_id: int) -> SectionStore:
    """What one section writes through (unguarded when it holds no lease, as in tests)."""
    return SectionStore(rt.store, section_id, rt.guards.get(section_id, lambda: None),
                         rt.clock)


class _SectionWork:
    """One section's apply, run phase by phase; each phase records its own failures."""

    def __init__(self, rt: Runtime, uploads: ThreadPoolExecutor, section: Section,
                 obs: ObservedSection, plan: SectionPlan) -> None:
        self.rt = rt
        self.uploads = uploads
        self.section = section
        self.observed = obs
        self.plan = plan
        self.result = SectionResult(section.section_id)
        self.store = _store_for(rt, section.section_id)
        with work_folder(rt.tmp_dir):
            self.work = Path(tempfile.mkdtemp(prefix=f"section-{section.section_id}-",
                                              dir=rt.tmp_dir))
        self.facts: dict[str | None, Facts] = {}
        self.video_failed = False
        self.video_ready = threading.Event()  # the video phase is over (done, failed or none)
        self._video_local: Path | None = None
        self._video_info: MediaInfo | None = None
        self._speech: Path | None = None
        self._lock = threading.Lock()  # results and facts, written by several phase threads
        self._fetch_lock = threading.Lock()  # inputs fetched or extracted once per section
        self.master_text = obs.master_text
        self.dubs = SectionDubs(section, self.store, self.work, obs.dub_cache.keys(),
                                dubber=rt.dubber, packager=rt.packager, cpu=rt.cpu,
                                spend=rt.spend, tracker=rt.tracker, speech=self.speech,
                                video_duration=self._video_duration, say=self.say,
                                warn=self._warn)
        rebuilt = {a.language for a in plan.actions
                   if a.type in (Kind.PACKAGE_VIDEO, Kind.PACKAGE_AUDIO)}
        for language in [None, *obs.audio]:
            if language not in rebuilt:
                found = observed_facts(obs, obs.rendition(language))
                if found is not None:
                    self.facts[language] = found
        # Subtitle playlists master may list: the complete ones not rebuilt here, then new ones.
        redone = {a.language for a in plan.actions_of(Kind.PACKAGE_SUBTITLES)}
        wanted = {lang.code for lang in section.languages if lang.subtitles}
        self.texts: dict[str, MediaPlaylist] = {
            code: rend.playlist for code, rend in obs.subtitles.items()
            if code in wanted and code not in redone and rend.playlist is not None
            and rend.complete}

    # -- helpers ---------------------------------------------------------------------------
    def say(self, message: str) -> None:
        self.rt.tracker.say(self.section.section_id, message)

    def fail(self, step: Step, language: str | None, err: Exception) -> None:
        detail = getattr(err, "detail", "")
        with self._lock:
            self.result.failures.append(Failure(step, language, str(err), detail))
        self.say(f"{step} failed: {err}")

    def video_local(self) -> Path:
        """The section's video as a local file, fetched at most once."""
        with self._fetch_lock:
            if self._video_local is None:
                self._video_local = self.rt.inputs.fetch(self.section.video, self.work / "input")
            return self._video_local

    def video_info(self) -> MediaInfo:
        """What that local file holds, probed once for every step that reads it (the file is
        this apply's own copy: nothing else writes it)."""
        video = self.video_local()
        with self._fetch_lock:
            if self._video_info is None:
                self._video_info = self.rt.packager.probe(video, self.section.video.display())
            return self._video_info

    def speech(self) -> Path:
        """The video's audio track, extracted once, to send for dubbing."""
        video, info = self.video_local(), self.video_info()
        with self._fetch_lock:
            if self._speech is None:
                self._speech = self.rt.packager.extract_audio(video, self.work / "speech.mp3",
                                                              info=info)
            return self._speech

    def _submit(self, key: str, path: Path) -> Future:
        sid, tracker = self.section.section_id, self.rt.tracker
        tracker.upload_queued(sid, path.stat().st_size)

        def put() -> None:
            self.store.put_file(key, path, layout.meta_for(key),
                                on_bytes=lambda sent: tracker.upload_sent(sid, sent))
            tracker.uploaded(sid)

        return self.uploads.submit(put)

    @contextmanager
    def _progress(self, task: str) -> Iterator[OnProgress]:
        """ffmpeg's progress of `task` for the tracker, until the task is over."""
        sid, tracker = self.section.section_id, self.rt.tracker
        try:
            yield lambda done, total: tracker.progress(sid, task, done, total)
        finally:
            tracker.task_done(sid, task)

    def _streamer(self, language: str | None) -> tuple[dict[str, Future], OnSegment | None]:
        """Uploads started while ffmpeg still writes, and the callback that starts them. Only
        for a new rendition: a replaced one's segments are uploaded after its encode succeeded,
        so a failed encode never mixes new segments into the rendition players still get."""
        early: dict[str, Future] = {}
        if self.observed.rendition_keys(language):
            return early, None
        directory = layout.rendition_dir(self.section.section_id, language)

        def on_segment(path: Path) -> None:
            early[directory + path.name] = self._submit(directory + path.name, path)

        return early, on_segment

    def _discard(self, early: dict[str, Future]) -> None:
        """Delete the segments a failed rendition uploaded early (no playlist names them)."""
        wait(early.values())
        landed = [key for key, fut in early.items() if fut.exception() is None]
        try:
            self.store.delete(landed)
        except StoreError as err:
            with self._lock:
                self.result.warnings.append(f"left {len(landed)} unnamed segment(s): {err}")

    def _upload_all(self, items: Iterable[tuple[str, Path]],
                    early: dict[str, Future] | None = None) -> None:
        early = early or {}
        futures = [(key, early.get(key) or self._submit(key, path)) for key, path in items]
        errors = []
        for key, fut in futures:
            try:
                fut.result()
                with self._lock:
                    self.result.uploaded.append(key)
            except StoreError as err:
                errors.append(str(err))
        if errors:
            raise StoreError(f"{len(errors)} upload(s) failed; first: {errors[0]}")

    def _section_target(self, own: MediaPlaylist) -> int:
        known = [f.playlist.target_duration for f in self.facts.values()]
        return max([section_target([own]), *known])

    def publish(self, language: str | None, out: Path, source_id: str,
                extra: dict[str, str], expected: float,
                early: dict[str, Future] | None = None) -> Facts:
        """Upload a packaged rendition: init + segments (those in `early` are already on their
        way), then its playlist (our rewrite), then remove segments the new playlist no longer
        names. A rendition more than MAX_SHORTFALL seconds shorter than `expected` (what
        the input says it lasts) is refused and nothing of it is left published: ffmpeg exits 0
        on a file cut short."""
        name = layout.playlist_name(language)
        produced = parse_media((out / name).read_text())
        if expected - produced.duration > MAX_SHORTFALL:
            raise MediaError(
                f"packaged {produced.duration:.1f}s but the input lasts {expected:.1f}s "
                "(truncated or damaged?); not published")
        missing = [s.uri for s in produced.segments if not (out / s.uri).is_file()]
        if missing or not (out / layout.INIT).is_file():
            raise MediaError(f"ffmpeg output incomplete: {missing[:1] or layout.INIT}")
        track = read_track((out / layout.INIT).read_bytes(), "video" if language is None
                           else "audio")
        playlist = replace(produced, target_duration=self._section_target(produced),
                           map_uri=layout.INIT)
        directory = layout.rendition_dir(self.section.section_id, language)
        files = [layout.INIT] + [s.uri for s in playlist.segments]
        self._upload_all(((directory + f, out / f) for f in files), early)
        self.store.put_bytes(directory + name, render_media(playlist).encode(),
                             layout.PLAYLIST_META.stamped({STAMP_SOURCE: source_id, **extra}))
        self.result.uploaded.append(directory + name)
        # Replaced: segment names are reused under a 1-year cache, so the CDN must drop the old.
        if self.observed.rendition_keys(language):
            with self._lock:
                self.result.invalidation_paths.append(layout.cdn_folder(directory))
        stale = sorted(set(self.observed.rendition_keys(language)) - {directory + f for f in files}
                       - {directory + name})
        if stale:
            self.store.delete(stale)
            self.result.deleted += stale
        sizes = {f: (out / f).stat().st_size for f in files[1:]}
        rate = extra.get(STAMP_FRAME_RATE)
        return Facts(playlist, track, sizes, float(rate) if rate else None)

    # -- phases ----------------------------------------------------------------------------
    def video(self) -> None:
        try:
            self._video()
        finally:
            self.video_ready.set()

    def _video(self) -> None:
        action = next(iter(self.plan.actions_of(Kind.PACKAGE_VIDEO)), None)
        if action is None:
            return
        self.say("packaging video")
        early, on_segment = self._streamer(None)
        try:
            out = self.work / "video"
            with self.rt.cpu, self._progress("packaging video") as on_progress:
                info = self.rt.packager.package_video(self.video_local(), out, on_segment,
                                                      on_progress, info=self.video_info())
            extra = {STAMP_SETTINGS: VIDEO_SETTINGS}
            if info.frame_rate:
                extra[STAMP_FRAME_RATE] = f"{info.frame_rate:g}"
            self.facts[None] = self.publish(None, out, action.source_id or "", extra,
                                            info.duration, early)
        except EXPECTED as err:
            self.video_failed = True
            self.fail(Step.PACKAGE_VIDEO, None, err)
            self._discard(early)

    def dub(self, action: Action) -> None:
        """Dub one language, paying at most once (dub_work.py)."""
        if self.video_failed:
            return
        try:
            self.dubs.dub(action)
        except EXPECTED as err:
            self.fail(Step.DUB, action.language, err)
            return
        with self._lock:
            self.result.dubbed.append(action.language or "")

    def _video_duration(self) -> float | None:
        facts = self.facts.get(None)
        return facts.playlist.duration if facts is not None else None

    def _warn(self, message: str) -> None:
        with self._lock:
            self.result.warnings.append(message)

    def _examined_input(self, action: Action) -> Examined:
        """A language's input, probed and measured: a dub of this run was so when downloaded;
        a cached dub that no longer is usable audio is set aside (never packaged)."""
        lang = self.section.language(action.language or "")
        if lang.audio is None:
            if lang.code in self.dubs.files:
                return self.dubs.files[lang.code]
            if any(a.language == lang.code for a in self.plan.actions_of(Kind.DUB)):
                raise DubbingError("dub did not complete", language=lang.code)
            return self.dubs.cached(lang.code, action.source_id or "")
        from_video = lang.audio.kind == "video"
        source = (self.video_local() if from_video
                  else self.rt.inputs.fetch(lang.audio, self.work / "input"))
        info = self.video_info() if from_video else None
        with self.rt.cpu:
            return self.rt.packager.examine_audio(source, from_video=from_video, info=info)

    def audio(self, action: Action) -> None:
        """Examine the input (needs nothing from the video, so it overlaps the video's
        packaging), then encode it to the video's duration, uploading while ffmpeg writes."""
        code = action.language or ""
        if any(f.language == code for f in self.result.failures):
            return  # its dub failed; already reported
        examined: Examined | Exception
        try:
            examined = self._examined_input(action)
        except EXPECTED as err:
            examined = err
        self.video_ready.wait()
        if self.video_failed or None not in self.facts:
            if not self.video_failed:
                self.fail(Step.PACKAGE_AUDIO, code, MediaError("video rendition not ready"))
            return
        self.say(f"packaging audio {code}")
        early, on_segment = self._streamer(code)
        try:
            if isinstance(examined, Exception):
                raise examined
            video = self.facts[None].playlist
            duration = video.duration
            lang = self.section.language(code)
            fitted = check_fit(  # before anything of this language is encoded or uploaded
                examined.info.duration, duration, may_pad=lang.may_pad, may_trim=lang.may_trim,
                label=_audio_label(lang), language=code)
            out = self.work / "audio" / code
            with self.rt.cpu, self._progress(f"packaging audio {code}") as on_progress:
                self.rt.packager.encode_audio(
                    examined, out, segments=[s.duration for s in video.segments],
                    on_segment=on_segment, on_progress=on_progress)
            facts = self.publish(code, out, action.source_id or "",
                                 {STAMP_SETTINGS: AUDIO_SETTINGS}, duration, early)
            with self._lock:
                self.facts[code] = facts
                if fitted:
                    self.result.warnings.append(fitted)
        except EXPECTED as err:
            self.fail(Step.PACKAGE_AUDIO, code, err)
            self._discard(early)

    def subtitles(self, action: Action) -> None:
        """Cut one language's subtitle file on the video's segment boundaries and publish it:
        segments, then the playlist. A bad file publishes nothing of this rendition."""
        code = action.language or ""
        video = self.facts.get(None)
        if video is None:
            return  # the video failed (reported); nothing to cut to
        lang = self.section.language(code)
        assert lang.subtitles is not None
        directory = layout.subtitles_dir(self.section.section_id, code)
        out = self.work / "subtitles" / code
        try:
            if lang.subtitles == DUB_TRANSCRIPT:
                data = self.dubs.transcript(lang, action.keys[0])
                label = f"transcript of the {self.section.transcript_of(lang)[0]} dub"
            else:
                data = self.rt.inputs.fetch(lang.subtitles, self.work / "input").read_bytes()
                label = lang.subtitles.display()
            cues = subtitles.check(subtitles.parse(data, label), label, video.playlist.duration)
            segments = []
            texts = subtitles.segments(cues, [s.duration for s in video.playlist.segments])
            with work_folder(out):
                out.mkdir(parents=True, exist_ok=True)
                for i, (seg, text) in enumerate(zip(video.playlist.segments, texts,
                                                    strict=True)):
                    name = subtitles.SEGMENT_TEMPLATE % i
                    (out / name).write_text(text, encoding="utf-8")
                    segments.append(replace(seg, uri=name))
            playlist = MediaPlaylist(self._section_target(video.playlist), tuple(segments),
                                     map_uri=None)
            self._upload_all((directory + s.uri, out / s.uri) for s in segments)
            self.store.put_bytes(
                directory + layout.SUBTITLES_PLAYLIST, render_media(playlist).encode(),
                layout.PLAYLIST_META.stamped({STAMP_SOURCE: action.source_id or "",
                                              STAMP_SETTINGS: subtitles.SETTINGS}))
            with self._lock:
                self.result.uploaded.append(directory + layout.SUBTITLES_PLAYLIST)
                self.texts[code] = playlist
                self.result.warnings.extend(f"{code}: {note}" for note in cues.dropped)
            old = set(self.observed.subtitle_keys(code))
            if old:
                self.result.invalidation_paths.append(layout.cdn_folder(directory))
            stale = sorted(old - {directory + s.uri for s in segments}
                           - {directory + layout.SUBTITLES_PLAYLIST})
            if stale:
                self.store.delete(stale)
                self.result.deleted += stale
        except EXPECTED as err:
            self.fail(Step.PACKAGE_SUBTITLES, code, err)

    def finish(self) -> None:
        """Subtitles, metadata fixes, playlist targets, deletions, then master last."""
        try:
            for action in self.plan.actions_of(Kind.PACKAGE_SUBTITLES):
                self.subtitles(action)
            self._fix_metadata()
            self._adopt()
            self._harmonize_targets()
            self._master()
            # Only now that master no longer names them.
            for action in self.plan.actions_of(Kind.DELETE_OBJECTS):
                self.store.delete(list(action.keys))
                self.result.deleted += list(action.keys)
        except PreconditionFailed:
            self.result.conflict = True
        except EXPECTED as err:
            self.fail(Step.FINISH, None, err)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
            self.say(f"{'done' if self.result.ok else 'FAILED'}: "
                     f"{len(self.result.uploaded)} object(s) uploaded")
            self.rt.tracker.section_done(self.section.section_id)

    def applied(self) -> Applied:
        """What this section's apply leaves for the state index."""
        return Applied(self.section.section_id, self.observed, self.store.written,
                       self.store.deleted, self.store.last_write, self.master_text,
                       self.facts, self.texts, self.result.ok, self.result)

    def _fix_metadata(self) -> None:
        keys = [k for a in self.plan.actions_of(Kind.FIX_METADATA) for k in a.keys]
        def fix(key: str) -> None:
            have = self.observed.objects[key].meta
            assert have is not None  # the planner fixes only headers it read
            self.store.set_meta(key, layout.meta_for(key).stamped(have.user_metadata))
        for key, _ in zip(keys, self.uploads.map(fix, keys), strict=True):
            self.result.fixed.append(key)

    def _adopt(self) -> None:
        """Stamp each rendition the plan adopts (another tool wrote it; it matched the input):
        a metadata-only write of its playlist, with the table's headers, so a later change of
        input shows as for any rendition the reconciler built. After the metadata fixes, which
        would otherwise write the playlist's old metadata back."""
        for action in self.plan.actions_of(Kind.ADOPT):
            key = action.keys[0]
            have = self.observed.objects[key].meta
            assert have is not None  # a playlist is read (GET) with its headers
            meta = layout.PLAYLIST_META.stamped(have.user_metadata).stamped(
                {STAMP_SOURCE: action.source_id or "", **dict(action.stamp)})
            self.store.set_meta(key, meta)
            self.result.fixed.append(key)
            rate = meta.user_metadata.get(STAMP_FRAME_RATE)
            if action.language is None and rate and None in self.facts:  # master states it
                self.facts[None] = replace(self.facts[None], frame_rate=float(rate))

    def _harmonize_targets(self) -> None:
        ready = {lang: f for lang, f in self.facts.items()
                 if lang is None or lang in {x.code for x in self.section.languages}}
        if not ready:
            return
        sid = self.section.section_id
        playlists = {layout.rendition_dir(sid, lang) + layout.playlist_name(lang): f.playlist
                     for lang, f in ready.items()}
        playlists.update({layout.subtitles_dir(sid, code) + layout.SUBTITLES_PLAYLIST: p
                          for code, p in self.texts.items()})
        target = section_target(playlists.values())
        for key, old in playlists.items():
            if old.target_duration == target:
                continue
            current = self.store.head(key)
            stamps = current.user_metadata if current else {}
            playlist = replace(old, target_duration=target)
            self.store.put_bytes(key, render_media(playlist).encode(),
                                 layout.PLAYLIST_META.stamped(stamps))
            self.result.uploaded.append(key)
        self.texts = {code: replace(p, target_duration=target) for code, p in self.texts.items()}
        self.facts = {lang: replace(f, playlist=replace(f.playlist, target_duration=target))
                      for lang, f in self.facts.items()}

    def _master(self) -> None:
        video = self.facts.get(None)
        audio = {lang.code: self.facts[lang.code] for lang in self.section.languages
                 if lang.code in self.facts
                 and lang.code not in self.result.failed_audio}
        if video is None or not audio:
            return
        self.result.languages_ready = [lang.code for lang in self.section.languages
                                       if lang.code in audio]
        text = compose_master(self.section, video, audio, self.texts)
        key = layout.master_key(self.section.section_id)
        if text == self.observed.master_text:
            return
        current = self.observed.master
        self.store.put_bytes(
            key, text.encode(), layout.PLAYLIST_META,
            if_match=current.etag if current else None, if_none_match=current is None,
        )
        self.master_text = text
        self.result.master_written = True
        self.result.uploaded.append(key)
        self.result.invalidation_paths.append(layout.cdn_path(key))


def _audio_label(lang: Language) -> str:
    """A language's audio input as a message names it (never a presigned query)."""
    if lang.audio is None:
        return "the ElevenLabs dub"
    return "the video's own track" if lang.audio.kind == "video" else lang.audio.display()


def delete_section(rt: Runtime, sp: SectionPlan) -> SectionResult:
    """A section no manifest declares (--prune; `reconcile destroy`): master first, so it never
    names a deleted object, then everything else."""
    result = SectionResult(sp.section_id)
    store = _store_for(rt, sp.section_id)
    for action in sp.actions_of(Kind.DELETE_OBJECTS):
        keys = list(action.keys)
        try:
            store.check_own(keys)  # all of them before master goes
            if keys and keys[0] == layout.master_key(sp.section_id):
                store.delete(keys[:1])
                keys = keys[1:]
            store.delete(keys)
            result.deleted += list(action.keys)
            result.invalidation_paths.append(
                layout.cdn_folder(layout.section_prefix(sp.section_id)))
        except StoreError as err:
            result.failures.append(Failure(Step.DELETE_SECTION, None, str(err)))
    return result


def _package(rt: Runtime, jobs: list[_SectionWork]) -> None:
    """Videos, dubs and audio of every section at once, ffmpeg bounded by `rt.cpu`: audio
    inputs are measured while videos are copied; a dub starts once its section's video is
    packaged (a broken video is not worth paying for), its audio once the dub is in. Videos are
    queued first, so an audio task waiting for its video never holds up that video."""
    dubs = [(j, a) for j in jobs for a in j.plan.actions_of(Kind.DUB)]
    dubbed = {(id(j), a.language) for j, a in dubs}
    audio = [(j, a) for j in jobs for a in j.plan.actions_of(Kind.PACKAGE_AUDIO)]
    workers = 2 * (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media") as pool, \
            ThreadPoolExecutor(max_workers=max(1, rt.dub_concurrency),
                               thread_name_prefix="dub") as dub_pool:
        tasks = [pool.submit(j.video) for j in jobs]
        paid = [dub_pool.submit(lambda j=j, a=a: (j.video_ready.wait(), j.dub(a)))
                for j, a in dubs]
        tasks += [pool.submit(j.audio, a) for j, a in audio if (id(j), a.language) not in dubbed]
        wait(paid)
        tasks += [pool.submit(j.audio, a) for j, a in audio if (id(j), a.language) in dubbed]
    for task in [*tasks, *paid]:
        task.result()  # an unexpected error (a bug) surfaces, as it did before


def apply_plan(plan: Plan, desired: dict[int, Section], observed: dict[int, ObservedSection],
               rt: Runtime, recorder: Recorder | None = None) -> list[SectionResult]:
    """Run every section's actions; returns one result per section that had actions. What the
    sections now are goes to `recorder` for the caller to record (engine.py does, after the
    invalidation) or, without one, is recorded in the state index before this returns."""
    with work_folder(rt.tmp_dir):
        rt.tmp_dir.mkdir(parents=True, exist_ok=True)
    removed = [delete_section(rt, sp) for sp in plan.sections
               if sp.actions and sp.section_id not in desired]
    with ThreadPoolExecutor(max_workers=rt.workers, thread_name_prefix="upload") as uploads:
        jobs = [
            _SectionWork(rt, uploads, desired[sp.section_id], observed[sp.section_id], sp)
            for sp in plan.sections
            if sp.actions and sp.section_id in desired
        ]
        _package(rt, jobs)
        cpu = max(1, min(2, len(jobs) or 1))
        with ThreadPoolExecutor(max_workers=cpu, thread_name_prefix="finish") as pool:
            list(pool.map(lambda j: j.finish(), jobs))
    own = recorder is None
    recorder = recorder or rt.recorder()
    recorder.add([j.applied() for j in jobs], {r.section_id: r for r in removed}, observed)
    if own:
        recorder.record()
    return [j.result for j in jobs] + removed
