"""What observe found of a section (the model the planner reads) and what a full read
concludes from a LIST and the bodies it GETs: a playlist's problems, the objects whose headers
no seal vouches for. observe.py reads the store into it; state.py records it in the index."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import layout
from .hls import MediaPlaylist, PlaylistError, parse_master
from .inputs import InputState
from .mp4 import TrackInfo
from .packager import MediaInfo
from .store import ObjectInfo

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
    def stamp(self) -> Mapping[str, str]:
        """The playlist's user metadata (the reconciler's stamps); empty when there is none."""
        return self.playlist_info.user_metadata if self.playlist_info else {}


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


def job_record(body: bytes) -> dict:
    """A dub's job record (written around the paid create); {} when unreadable, which the
    planner treats like a record without a dubbing_id: billed in full."""
    try:
        record = json.loads(body)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


# -- what a full read concludes from a LIST and the bodies it GETs (the index checks the same) -


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
    for _, rend in renditions(obs):
        info = rend.playlist_info
        if (info and info.meta and STAMP_SETTINGS in info.meta.user_metadata
                and info.meta.same_headers(layout.PLAYLIST_META)):
            sealed[layout.folder_of(info.key)] = info
    todo = []
    for key, info in obs.objects.items():
        if info.meta is not None or layout.meta_for(key) is None:
            continue
        seal = sealed.get(layout.folder_of(key))
        if deep or seal is None or not info.last_modified < seal.last_modified:
            todo.append(key)
    return todo


def renditions(obs: ObservedSection) -> list[tuple[str, Rendition]]:
    """Every rendition with its record name: `video`, `audio/{code}`, `subtitles/{code}`."""
    return [("video", obs.video), *((f"audio/{c}", r) for c, r in obs.audio.items()),
            *((f"subtitles/{c}", r) for c, r in obs.subtitles.items())]
