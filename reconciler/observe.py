"""Store (+ inputs) -> observed state of each section. Read-only.

A full read of a section: one LIST of its prefix, a GET of master, of each media playlist and
of each init.mp4 (they are small and carry what master needs), and a HEAD only for objects whose
headers LIST cannot vouch for. An object written by the reconciler before its rendition's
playlist (LastModified strictly older than the playlist, whose own headers are right) still
has the headers it was written with; anything touched later is HEADed. `deep=True` HEADs all.

A section whose LIST entries all match its record in the state index (state.py) is rebuilt
from that record with no further request; many sections are listed with one LIST of the whole
assets prefix instead of one each.

Either way, a video rendition without a source stamp (another tool wrote it) is read from the
media (its init and first segment) and the manifest's video probed, for the planner to decide
whether to adopt it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from . import layout
from .hls import PlaylistError, parse_media
from .inputs import Inputs, read_media
from .manifest import Section, Source
from .mp4 import InitSegmentError, frame_rate, read_track
from .observed import (
    STAMP_SOURCE,
    ObservedSection,
    Rendition,
    SubtitleRendition,
    UnstampedVideo,
    job_record,
    media_problems,
    subtitle_problems,
    unvouched,
)
from .packager import MediaInfo, Packager
from .state import Records, from_record, load_index
from .store import ObjectInfo, Store, StoreError


class _SectionReader:
    """Reads one section; each step fills in the ObservedSection."""

    def __init__(self, store: Store, section_id: int, deep: bool, pool: ThreadPoolExecutor,
                 inputs: Inputs | None = None, packager: Packager | None = None):
        self.store = store
        self.obs = ObservedSection(section_id, {})
        self.deep = deep
        self.inputs = inputs
        self.packager = packager
        self.pool = pool

    def _remember(self, info: ObjectInfo) -> None:
        self.obs.objects[info.key] = info

    def read_rendition(self, language: str | None) -> Rendition:
        sid = self.obs.section_id
        directory = layout.rendition_dir(sid, language)
        rend = Rendition(language)
        playlist_key = directory + layout.playlist_name(language)
        if playlist_key not in self.obs.objects:
            if any(k.startswith(directory) for k in self.obs.objects):
                rend.problems.append(f"{layout.playlist_name(language)} missing")
            return rend
        got = self.store.get(playlist_key)
        if got is None:
            rend.problems.append(f"{layout.playlist_name(language)} missing")
            return rend
        if not self._parse(rend, *got, layout.playlist_name(language)):
            return rend
        rend.problems += media_problems(rend.playlist, directory, self.obs.objects)
        init = self.store.get(directory + layout.INIT)
        if init is None:
            rend.problems.append(f"{layout.INIT} missing")
        else:
            data, init_info = init
            self._remember(init_info)
            try:
                rend.track = read_track(data, "video" if language is None else "audio")
            except InitSegmentError as err:
                rend.problems.append(f"{layout.INIT}: {err}")
        return rend

    def read_subtitles(self, code: str) -> SubtitleRendition:
        """A subtitle rendition: its playlist and every segment it names (no init)."""
        directory = layout.subtitles_dir(self.obs.section_id, code)
        rend = SubtitleRendition(code)
        name = layout.SUBTITLES_PLAYLIST
        got = self.store.get(directory + name) if directory + name in self.obs.objects else None
        if got is None:
            if any(k.startswith(directory) for k in self.obs.objects):
                rend.problems.append(f"{name} missing")
            return rend
        if not self._parse(rend, *got, name):
            return rend
        rend.problems += subtitle_problems(rend.playlist, directory, self.obs.objects)
        return rend

    def _parse(self, rend: Rendition, body: bytes, info: ObjectInfo, name: str) -> bool:
        """Read a rendition's playlist into it; False, with the problem noted, when it does
        not parse."""
        self._remember(info)
        rend.playlist_info = info
        try:
            rend.playlist = parse_media(body.decode("utf-8", errors="replace"))
        except PlaylistError as err:
            rend.problems.append(f"{name} {err}")
            return False
        return True

    def check_headers(self) -> None:
        """HEAD every governed object whose headers LIST cannot vouch for."""
        todo = unvouched(self.obs, self.deep)
        for info in self.pool.map(self.store.head, todo):
            if info is not None:
                self._remember(info)

    def run(self, section: Section | None, previous: ObservedSection | None = None,
            listing: dict[str, ObjectInfo] | None = None,
            record: dict | None = None) -> ObservedSection:
        """`listing`: the section's objects from a catalogue-wide LIST (else it is listed
        here); `record`: its record in the state index, used when the LIST matches it."""
        sid = self.obs.section_id
        self.obs.objects = (self.store.list(layout.section_prefix(sid)) if listing is None
                            else listing)
        if _unchanged(previous, self.obs.objects, section):
            return previous
        indexed = from_record(sid, record, self.obs.objects) if record is not None else None
        if indexed is not None:
            self.obs = indexed
            for lang in section.languages if section else ():
                self.obs.audio.setdefault(lang.code, Rendition(lang.code))
                if lang.subtitles:
                    self.obs.subtitles.setdefault(lang.code, SubtitleRendition(lang.code))
            if section is not None:
                self.observe_inputs(section, previous)
            return self.obs
        master = layout.master_key(sid)
        if master in self.obs.objects:
            got = self.store.get(master)
            if got is not None:
                self.obs.master_text = got[0].decode("utf-8", errors="replace")
                self._remember(got[1])
        codes = layout.languages_under(sid, list(self.obs.objects))
        if section is not None:
            codes |= {lang.code for lang in section.languages}
        languages: list[str | None] = [None, *sorted(codes)]
        for language, rend in zip(
            languages, self.pool.map(self.read_rendition, languages), strict=True
        ):
            if language is None:
                self.obs.video = rend
            else:
                self.obs.audio[language] = rend
        subtitle_codes = sorted(layout.languages_under(sid, list(self.obs.objects), "subtitles") | {
            lang.code for lang in (section.languages if section else ()) if lang.subtitles})
        for code, sub in zip(subtitle_codes, self.pool.map(self.read_subtitles, subtitle_codes),
                             strict=True):
            self.obs.subtitles[code] = sub
        self.check_headers()
        if section is not None:
            self.observe_inputs(section, previous)
        return self.obs

    def rendition_frame_rate(self) -> float | None:
        """The video rendition's frame rate from its init and first segment (two GETs); None
        when they do not say."""
        directory = layout.video_dir(self.obs.section_id)
        playlist = self.obs.video.playlist
        assert playlist is not None and playlist.segments  # a complete rendition
        init = self.store.get(directory + layout.INIT)
        first = self.store.get(directory + playlist.segments[0].uri)
        if init is None or first is None:
            return None
        try:
            return frame_rate(init[0], first[0])
        except InitSegmentError:
            return None

    def observe_inputs(self, section: Section, previous: ObservedSection | None) -> None:
        """Identities of the inputs, so changed ones are rebuilt; the dub cache listing; the
        video's length for a dubbed section not packaged yet (`previous`: this run's earlier
        observation, whose read of the same video is not repeated: a remote video is
        downloaded for it)."""
        inputs = self.inputs
        assert inputs is not None  # observe() refuses declared sections without it
        self.obs.video_input = inputs.identify(section.video)
        if self.obs.video.complete and STAMP_SOURCE not in self.obs.video.stamp:
            self.obs.unstamped_video = UnstampedVideo(self.read_media(section.video),
                                                      self.rendition_frame_rate())
        remote = [lang for lang in section.languages if lang.audio and lang.audio.kind != "video"]
        states = self.pool.map(lambda lang: inputs.identify(lang.audio), remote)
        for lang, state in zip(remote, states, strict=True):
            self.obs.audio_inputs[lang.code] = state
        texts = [lang for lang in section.languages
                 if lang.subtitles and lang.subtitles.kind != "dub"]  # dubs: their cache key
        states = self.pool.map(lambda lang: inputs.identify(lang.subtitles), texts)
        for lang, state in zip(texts, states, strict=True):
            self.obs.subtitle_inputs[lang.code] = state
        if any(lang.audio is None for lang in section.languages):
            self.obs.dub_cache = self.store.list(layout.dub_cache_prefix(section.section_id))
            jobs = [k for k in self.obs.dub_cache if k.endswith(layout.JOB_SUFFIX)]
            for key, got in zip(jobs, self.pool.map(self.store.get, jobs), strict=True):
                self.obs.dub_jobs[key] = job_record(got[0] if got else b"")
            if not self.obs.video.complete:
                self.obs.video_duration = self.video_duration(section.video, previous)

    def video_duration(self, video: Source, previous: ObservedSection | None) -> float | None:
        """The video's length, as `previous` read it when the video's identity is the same
        now, else read from its bytes (None when unreadable)."""
        now = self.obs.video_input
        if (previous is not None and previous.video_duration is not None and now is not None
                and now.identity is not None and previous.video_input == now):
            return previous.video_duration
        info = self.read_media(video)
        return info.duration or None if info else None

    def read_media(self, source: Source) -> MediaInfo | None:
        """What the input holds, as the packager reads it (None when unreadable)."""
        if self.inputs is None or self.packager is None:
            raise TypeError("observe: probing a section's video needs the Inputs and Packager "
                            "seams")
        return read_media(self.inputs, self.packager, source)


def _unchanged(previous: ObservedSection | None, listing: dict[str, ObjectInfo],
               section: Section | None) -> bool:
    """True when a LIST shows exactly what `previous` (this run's own observation) saw: same
    keys, ETags, sizes and LastModified, so its GETs and HEADs need not be repeated. Sections
    with dubs are always read again (their cache lives outside the prefix)."""
    if previous is None or previous.error is not None:
        return False
    if section is not None and any(lang.audio is None for lang in section.languages):
        return False
    seen = previous.objects
    return seen.keys() == listing.keys() and all(
        seen[k].listed == info.listed for k, info in listing.items())


def _grouped(listing: dict[str, ObjectInfo], ids) -> dict[int, dict[str, ObjectInfo]]:
    """A catalogue-wide LIST split into the sections asked for (layout names the section)."""
    out: dict[int, dict[str, ObjectInfo]] = {sid: {} for sid in ids}
    for key, info in listing.items():
        sid = layout.section_of(key)
        if sid in out:
            out[sid][key] = info
    return out


def one_list(index: Records, sections: int) -> bool:
    """Whether one LIST over the whole assets prefix beats one LIST per section in scope.
    Its cost grows with the whole catalogue (a request per 1,000 objects, one after the other),
    theirs with the scope (a request per section, in parallel): take it when its pages, as
    counted from the index, are fewer than the sections; without an index, from
    CATALOGUE_SECTIONS sections on (a catalogue of 10,000 sections of ~40 objects is ~400
    pages, so a CI run over a few changed sections keeps its few per-section LISTs)."""
    if not index:
        return sections >= CATALOGUE_SECTIONS
    pages = 1 + sum(len(rec.get("objects", ())) for rec in index.values()) // 1000
    return sections > pages


CATALOGUE_SECTIONS = 400


def observe(
    store: Store,
    sections: list[Section],
    *,
    extra_ids: list[int] | None = None,
    deep: bool = False,
    inputs: Inputs | None = None,
    packager: Packager | None = None,
    workers: int = 8,
    previous: dict[int, ObservedSection] | None = None,
) -> dict[int, ObservedSection]:
    """Observe every section (and `extra_ids` with no manifest, e.g. to prune). With
    `previous` (an observation made moments ago by this run, e.g. before taking the locks), a
    section whose LIST is unchanged is not read again: observe once. `inputs` identifies the
    sections' inputs (needed when `sections` is not empty: extra ids have none); `packager` reads
what an input holds when the plan needs it (an unstamped video, a dubbed section's length before
its video is packaged). The state index
    is read once (not with `deep`, nor when `previous` covers every section) and a section
    matching its record is not read at all."""
    if sections and inputs is None:
        raise TypeError("observe: declared sections need the Inputs seam to identify inputs")
    wanted: dict[int, Section | None] = {s.section_id: s for s in sections}
    for sid in extra_ids or []:
        wanted.setdefault(sid, None)
    previous = previous or {}
    index: Records = {}
    if wanted and not deep and not all(sid in previous for sid in wanted):
        try:
            index = load_index(store)
        except StoreError:
            index = {}  # a cache: without it every section is read, as it would be anyway
    listings: dict[int, dict[str, ObjectInfo]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = {}
        if len(wanted) > 1 and one_list(index, len(wanted)):
            try:
                listings = _grouped(store.list(layout.assets_prefix()), wanted)
            except StoreError as err:
                return {sid: ObservedSection(sid, {}, error=f"observe failed: {err}")
                        for sid in wanted}
        for sid, section in wanted.items():
            try:
                results[sid] = _SectionReader(store, sid, deep, pool, inputs, packager).run(
                    section, previous.get(sid), listings.get(sid), index.get(sid))
            except StoreError as err:  # one section's failure must not stop the others
                results[sid] = ObservedSection(sid, {}, error=f"observe failed: {err}")
        return results
