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

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field, replace

from . import layout
from .hls import MediaPlaylist, PlaylistError, Segment, parse_master, parse_media
from .inputs import Inputs, InputState
from .manifest import Section
from .mp4 import InitSegmentError, TrackInfo, frame_rate, read_track
from .packaging import MediaInfo
from .state import Records, load_index
from .store import ObjectInfo, Store, StoreError

STAMP_SOURCE = "reconciler-source"
STAMP_SETTINGS = "reconciler-settings"
STAMP_FRAME_RATE = "reconciler-frame-rate"
# On a rendition another tool wrote and the reconciler adopted: what it was checked against.
STAMP_ADOPTED = "reconciler-adopted"


@dataclass
class Rendition:
    """One rendition (video, or one language's audio) as found in the store."""

    language: str | None
    playlist: MediaPlaylist | None = None
    playlist_info: ObjectInfo | None = None
    track: TrackInfo | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.playlist_info is not None

    @property
    def complete(self) -> bool:
        return self.playlist is not None and self.track is not None and not self.problems

    @property
    def stamp(self) -> dict[str, str]:
        return self.playlist_info.metadata if self.playlist_info else {}


@dataclass
class SubtitleRendition(Rendition):
    """One language's WebVTT rendition: a playlist and its segments (no init)."""

    @property
    def complete(self) -> bool:
        return self.playlist is not None and not self.problems


@dataclass(frozen=True)
class UnstampedVideo:
    """A video rendition the reconciler did not write (no source stamp) and the manifest's
    video, both read from the media, so the planner adopts it only when they agree."""

    declared: MediaInfo | None  # the manifest's video, probed; None when unreadable
    frame_rate: float | None  # the rendition's, from its init and first segment


@dataclass
class ObservedSection:
    section_id: int
    objects: dict[str, ObjectInfo]  # every object under the prefix; headers known where read
    master_text: str | None = None
    video: Rendition = field(default_factory=lambda: Rendition(None))
    audio: dict[str, Rendition] = field(default_factory=dict)
    subtitles: dict[str, SubtitleRendition] = field(default_factory=dict)
    video_input: InputState | None = None
    audio_inputs: dict[str, InputState] = field(default_factory=dict)
    subtitle_inputs: dict[str, InputState] = field(default_factory=dict)
    dub_cache: dict[str, ObjectInfo] = field(default_factory=dict)
    dub_jobs: dict[str, dict] = field(default_factory=dict)  # job record key -> its content
    video_duration: float | None = None  # probed only when dubs need it before packaging
    unstamped_video: UnstampedVideo | None = None  # read only for an unstamped video rendition
    error: str | None = None  # the section could not be observed at all
    indexed: bool = False  # rebuilt from the state index's record, not read

    @property
    def master(self) -> ObjectInfo | None:
        return self.objects.get(layout.master_key(self.section_id))

    def rendition(self, language: str | None) -> Rendition:
        return self.video if language is None else self.audio.get(language, Rendition(language))

    def rendition_keys(self, language: str | None) -> list[str]:
        prefix = layout.rendition_dir(self.section_id, language)
        return [k for k in self.objects if k.startswith(prefix) and "/" not in k[len(prefix):]]

    def sizes(self, language: str | None) -> dict[str, int]:
        """Segment URI (bare name) -> size, for bit-rate computation."""
        prefix = layout.rendition_dir(self.section_id, language)
        return {k[len(prefix):]: self.objects[k].size for k in self.rendition_keys(language)}

    def subtitle_rendition(self, code: str) -> SubtitleRendition:
        return self.subtitles.get(code, SubtitleRendition(code))

    def subtitle_keys(self, code: str) -> list[str]:
        prefix = layout.subtitles_dir(self.section_id, code)
        return [k for k in self.objects if k.startswith(prefix) and "/" not in k[len(prefix):]]

    def master_languages(self, media_type: str = "AUDIO") -> list[str]:
        """Languages master lists renditions of (audio by default, or SUBTITLES)."""
        if not self.master_text:
            return []
        try:
            return list(parse_master(self.master_text).uris(media_type))
        except PlaylistError:
            return []


def _job_record(body: bytes) -> dict:
    """A dub's job record (written around the paid create); {} when unreadable, which the
    planner treats like a record without a dubbing_id: billed in full."""
    try:
        record = json.loads(body)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _codes(section_id: int, keys: list[str], folder: str = "audio") -> set[str]:
    """Languages with objects under a folder (audio/ or subtitles/) of the section."""
    prefix = layout.language_root(section_id, folder)
    return {k[len(prefix):].split("/", 1)[0] for k in keys if k.startswith(prefix)}


# -- what a full read concludes from a LIST and the bodies it GETs (the index checks the same) -


def _folder(key: str) -> str:
    return key.rsplit("/", 1)[0] + "/"


def _missing_segments(playlist: MediaPlaylist, directory: str, objects) -> list[str]:
    return [s.uri for s in playlist.segments if "/" in s.uri or directory + s.uri not in objects]


def media_problems(playlist: MediaPlaylist, directory: str, objects) -> list[str]:
    """What is wrong with a video or audio playlist given the objects LIST found (its init
    aside): no init map, no segments, segments it names that are not there."""
    problems = []
    if playlist.map_uri != layout.INIT:
        problems.append(f'no #EXT-X-MAP:URI="{layout.INIT}"')
    if not playlist.segments:
        problems.append("playlist names no segments")
    missing = _missing_segments(playlist, directory, objects)
    if missing:
        problems.append(f"{len(missing)} segment(s) missing, first {missing[0]}")
    return problems


def subtitle_problems(playlist: MediaPlaylist, directory: str, objects) -> list[str]:
    """What is wrong with a subtitle playlist given the objects LIST found."""
    missing = _missing_segments(playlist, directory, objects)
    if missing:
        return [f"{len(missing)} segment(s) missing, first {missing[0]}"]
    return [] if playlist.segments else ["playlist names no segments"]


def unvouched(obs: ObservedSection, deep: bool) -> list[str]:
    """Governed objects whose headers are not known and that no seal vouches for, so a read
    HEADs them (all of them when `deep`). A seal is a rendition playlist stamped with its
    settings and carrying the table's headers: what the reconciler wrote before it (a strictly
    older LastModified) still has the headers it was written with."""
    sealed: dict[str, ObjectInfo] = {}
    for _, rend in _renditions(obs):
        info = rend.playlist_info
        if (info and info.headers_known and STAMP_SETTINGS in info.metadata
                and info.meta() == layout.meta_for(info.key)):
            sealed[_folder(info.key)] = info
    todo = []
    for key, info in obs.objects.items():
        if info.headers_known or layout.meta_for(key) is None:
            continue
        seal = sealed.get(_folder(key))
        if deep or seal is None or not info.last_modified < seal.last_modified:
            todo.append(key)
    return todo


# -- the state index's record of a section (state.py keeps them) ---------------------------


def _playlist_record(playlist: MediaPlaylist) -> list:
    segments = playlist.segments
    return [playlist.target_duration, playlist.map_uri, playlist.endlist,
            [s.uri for s in segments], [s.duration for s in segments]]


def _renditions(obs: ObservedSection) -> list[tuple[str, Rendition]]:
    """Every rendition with its record name: `video`, `audio/{code}`, `subtitles/{code}`."""
    return [("video", obs.video), *((f"audio/{c}", r) for c, r in obs.audio.items()),
            *((f"subtitles/{c}", r) for c, r in obs.subtitles.items())]


def to_record(obs: ObservedSection) -> dict | None:
    """What the state index keeps of a section's observation (None for a failed one): the
    LIST entry of every object, the headers known, master's text and each rendition's parsed
    playlist, init track and problems: all a full read would find, none of the inputs. An
    empty section has none (its LIST is all a read finds), so a refused first apply leaves the
    bucket as it found it."""
    if obs.error is not None or not obs.objects:
        return None
    cut = len(layout.section_prefix(obs.section_id))
    return {
        "objects": {k[cut:]: [i.etag, i.size, i.last_modified.timestamp()]
                    for k, i in obs.objects.items()},
        "headers": {k[cut:]: [i.content_type, i.cache_control, i.sse, i.metadata]
                    for k, i in obs.objects.items() if i.headers_known},
        "master": obs.master_text,
        "renditions": {name: {
            "info": rend.playlist_info.key[cut:] if rend.playlist_info else None,
            "playlist": _playlist_record(rend.playlist) if rend.playlist else None,
            "track": astuple(rend.track) if rend.track else None,
            "problems": rend.problems,
        } for name, rend in _renditions(obs) if rend.exists or rend.problems},
    }


def from_record(section_id: int, record: dict,
                listing: dict[str, ObjectInfo]) -> ObservedSection | None:
    """The section as its record describes it, when `listing` (a LIST of its prefix made now)
    shows exactly the recorded objects with the same ETag, size and LastModified and the record
    passes the checks a full read of that listing applies (consistent_with_listing); None
    otherwise (anything added, missing or touched, a CopyObject that kept the ETag included, a
    record this code cannot read or one that disagrees with itself): the section is then read."""
    prefix = layout.section_prefix(section_id)
    try:
        objects = record["objects"]
        if len(objects) != len(listing) or any(
                objects.get(key[len(prefix):]) != [i.etag, i.size, i.last_modified.timestamp()]
                for key, i in listing.items()):
            return None
        master = record["master"]
        obs = ObservedSection(section_id, dict(listing), indexed=True,
                              master_text=master if isinstance(master, str) else None)
        for rel, (ctype, cache, sse, metadata) in record["headers"].items():
            obs.objects[prefix + rel] = replace(
                obs.objects[prefix + rel], content_type=ctype, cache_control=cache, sse=sse,
                metadata=dict(metadata), headers_known=True)
        for name, rec in record["renditions"].items():
            folder, _, code = name.partition("/")
            kind = SubtitleRendition if folder == "subtitles" else Rendition
            rend = kind(code or None,
                        playlist=_playlist_from(rec["playlist"]),
                        playlist_info=obs.objects[prefix + rec["info"]] if rec["info"] else None,
                        track=TrackInfo(*rec["track"]) if rec["track"] else None,
                        problems=[str(p) for p in rec["problems"]])
            if folder == "video" and not code:
                obs.video = rend
            elif folder == "audio" and code:
                obs.audio[code] = rend
            elif folder == "subtitles" and code:
                obs.subtitles[code] = rend
            else:
                return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return obs if consistent_with_listing(obs, set(record["renditions"])) else None


def _playlist_from(rec: list | None) -> MediaPlaylist | None:
    """A recorded playlist, its types checked (TypeError when they are not a playlist's)."""
    if rec is None:
        return None
    target, map_uri, endlist, uris, durations = rec
    segments = tuple(Segment(u, float(d)) for u, d in zip(uris, durations, strict=True))
    if (type(target) is not int or not isinstance(endlist, bool)
            or not (map_uri is None or isinstance(map_uri, str))
            or not all(isinstance(s.uri, str) for s in segments)):
        raise TypeError("not a playlist record")
    return MediaPlaylist(target, segments, map_uri, endlist)


def _expected_problems(obs: ObservedSection, directory: str, rend: Rendition) -> bool:
    """Whether a rendition's problems are what a full read of the section's LIST would report
    with the playlist and init bodies the record says it found."""
    objects, subtitles = obs.objects, isinstance(rend, SubtitleRendition)
    name = layout.SUBTITLES_PLAYLIST if subtitles else layout.playlist_name(rend.language)
    info = rend.playlist_info
    if info is None:  # a folder without its playlist
        return (directory + name not in objects and rend.playlist is None and rend.track is None
                and rend.problems == [f"{name} missing"])
    if info.key != directory + name or not info.headers_known:
        return False
    if rend.playlist is None:  # it did not parse
        return (rend.track is None and len(rend.problems) == 1
                and rend.problems[0].startswith(f"{name} "))
    if subtitles:
        return rend.track is None and rend.problems == subtitle_problems(
            rend.playlist, directory, objects)
    expected = media_problems(rend.playlist, directory, objects)
    init = objects.get(directory + layout.INIT)
    if init is None:
        return rend.track is None and rend.problems == [*expected, f"{layout.INIT} missing"]
    if not init.headers_known:  # a read GETs it
        return False
    if rend.track is not None:
        return rend.problems == expected
    return (len(rend.problems) == len(expected) + 1 and rend.problems[:-1] == expected
            and rend.problems[-1].startswith(f"{layout.INIT}: "))


def consistent_with_listing(obs: ObservedSection, names: set[str]) -> bool:
    """Whether an observation (rebuilt from a record, `names` its renditions) claims nothing a
    full read of its objects would not: master's text exactly when master is listed, a rendition
    for exactly the folders holding objects, each with the problems a read would report (its
    playlist's segments and init present or not), and the headers of every object a read would
    HEAD (none is left unknown that no seal vouches for)."""
    sid = obs.section_id
    keys = list(obs.objects)
    master = obs.master
    if (master is None) != (obs.master_text is None) or (master and not master.headers_known):
        return False
    folders = {"video": layout.rendition_dir(sid, None)}
    folders |= {f"audio/{c}": layout.rendition_dir(sid, c) for c in _codes(sid, keys)}
    folders |= {f"subtitles/{c}": layout.subtitles_dir(sid, c)
                for c in _codes(sid, keys, "subtitles")}
    holding = {name for name, folder in folders.items() if any(k.startswith(folder) for k in keys)}
    if names != holding:
        return False
    rends = dict(_renditions(obs))
    return all(_expected_problems(obs, folders[name], rends[name])
               for name in names) and not unvouched(obs, deep=False)


class _SectionReader:
    """Reads one section; each step fills in the ObservedSection."""

    def __init__(self, store: Store, section_id: int, deep: bool, pool: ThreadPoolExecutor,
                 inputs: Inputs | None = None):
        self.store = store
        self.obs = ObservedSection(section_id, {})
        self.deep = deep
        self.inputs = inputs
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
        body, info = got
        self._remember(info)
        rend.playlist_info = info
        try:
            rend.playlist = parse_media(body.decode("utf-8", errors="replace"))
        except PlaylistError as err:
            rend.problems.append(f"{layout.playlist_name(language)} {err}")
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
        body, rend.playlist_info = got
        self._remember(rend.playlist_info)
        try:
            rend.playlist = parse_media(body.decode("utf-8", errors="replace"))
        except PlaylistError as err:
            rend.problems.append(f"{name} {err}")
            return rend
        rend.problems += subtitle_problems(rend.playlist, directory, self.obs.objects)
        return rend

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
                self.observe_inputs(section)
            return self.obs
        master = layout.master_key(sid)
        if master in self.obs.objects:
            got = self.store.get(master)
            if got is not None:
                self.obs.master_text = got[0].decode("utf-8", errors="replace")
                self._remember(got[1])
        codes = _codes(sid, list(self.obs.objects))
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
        subtitle_codes = sorted(_codes(sid, list(self.obs.objects), "subtitles") | {
            lang.code for lang in (section.languages if section else ()) if lang.subtitles})
        for code, sub in zip(subtitle_codes, self.pool.map(self.read_subtitles, subtitle_codes),
                             strict=True):
            self.obs.subtitles[code] = sub
        self.check_headers()
        if section is not None:
            self.observe_inputs(section)
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

    def observe_inputs(self, section: Section) -> None:
        """Identities of the inputs, so changed ones are rebuilt; the dub cache listing."""
        inputs = self.inputs
        assert inputs is not None  # observe() refuses declared sections without it
        self.obs.video_input = inputs.identify(section.video)
        if self.obs.video.complete and STAMP_SOURCE not in self.obs.video.stamp:
            self.obs.unstamped_video = UnstampedVideo(inputs.media(section.video),
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
                self.obs.dub_jobs[key] = _job_record(got[0] if got else b"")
            if not self.obs.video.complete:
                self.obs.video_duration = inputs.duration(section.video)


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
    workers: int = 8,
    previous: dict[int, ObservedSection] | None = None,
) -> dict[int, ObservedSection]:
    """Observe every section (and `extra_ids` with no manifest, e.g. to prune). With
    `previous` (an observation made moments ago by this run, e.g. before taking the locks), a
    section whose LIST is unchanged is not read again: observe once. `inputs` identifies the
    sections' inputs (needed when `sections` is not empty: extra ids have none). The state index
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
                results[sid] = _SectionReader(store, sid, deep, pool, inputs).run(
                    section, previous.get(sid), listings.get(sid), index.get(sid))
            except StoreError as err:  # one section's failure must not stop the others
                results[sid] = ObservedSection(sid, {}, error=f"observe failed: {err}")
        return results
