"""The fixed key layout and the metadata table: the contract with CloudFront and the players.

Every module that names an object or decides its headers asks this one; nothing else spells a
key or a Content-Type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

ASSETS_ROOT = "assets/curriculumsection"
VIDEO_PLAYLIST = "video.m3u8"
AUDIO_PLAYLIST = "audio.m3u8"
INIT = "init.mp4"
VIDEO_SEGMENT_TEMPLATE = "v_%03d.m4s"
AUDIO_SEGMENT_TEMPLATE = "a_%03d.m4s"
SUBTITLES_PLAYLIST = "subtitles.m3u8"
SSE = "AES256"

PLAYLIST_CACHE = "public, max-age=60"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class ObjectMeta:
    """Everything an object carries beside its bytes: its headers (for a key the table governs,
    the table's) and its user metadata (x-amz-meta-*: the reconciler's stamps, a dub's id, or
    another tool's). One value, so a header added here reaches every write and read.

    A header absent from the object is "". Equal when headers and user metadata are equal;
    hashed by the headers (the user metadata is a read-only mapping)."""

    # Each header's field names it in a plan's detail ("header") and says whether a viewer gets
    # it through the CDN ("served"); the stores map the fields to their own names.
    content_type: str = field(metadata={"header": "Content-Type", "served": True})
    cache_control: str = field(metadata={"header": "Cache-Control", "served": True})
    sse: str = field(default=SSE, metadata={"header": "SSE", "served": False})
    user_metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_metadata", MappingProxyType(dict(self.user_metadata)))

    @classmethod
    def header_fields(cls) -> tuple[str, ...]:
        """The headers' field names, in a fixed order (what a store writes besides the user
        metadata)."""
        return tuple(f.name for f in fields(cls) if "header" in f.metadata)

    def headers(self, *, served: bool = False) -> dict[str, str]:
        """The headers by name, the user metadata aside; `served`: only those a viewer gets."""
        return {f.metadata["header"]: getattr(self, f.name) for f in fields(self)
                if "header" in f.metadata and (f.metadata["served"] or not served)}

    def same_headers(self, other: ObjectMeta) -> bool:
        """Whether the two carry the same headers, whatever their user metadata."""
        return self.headers() == other.headers()

    def stamped(self, stamps: Mapping[str, str]) -> ObjectMeta:
        """These headers with `stamps` added to (or replacing keys of) the user metadata."""
        return replace(self, user_metadata={**self.user_metadata, **stamps})


# The user metadata naming the ElevenLabs dub a dub-cache object came from.
DUBBING_ID = "dubbing-id"

PLAYLIST_META = ObjectMeta("application/vnd.apple.mpegurl", PLAYLIST_CACHE)
SEGMENT_META = ObjectMeta("video/iso.segment", IMMUTABLE_CACHE)
INIT_META = ObjectMeta("video/mp4", IMMUTABLE_CACHE)
VTT_META = ObjectMeta("text/vtt; charset=utf-8", IMMUTABLE_CACHE)


def meta_for(key: str) -> ObjectMeta | None:
    """The table's metadata for a key, or None for objects the table does not govern."""
    name = key.rsplit("/", 1)[-1]
    if name.endswith(".m3u8"):
        return PLAYLIST_META
    if name.endswith(".m4s"):
        return SEGMENT_META
    if name == INIT:
        return INIT_META
    if name.endswith(".vtt"):
        return VTT_META
    return None


def section_prefix(section_id: int) -> str:
    return f"{ASSETS_ROOT}/{section_id}/"


def assets_prefix() -> str:
    """The folder every section's prefix is under: one LIST of it lists the whole catalogue."""
    return f"{ASSETS_ROOT}/"


def master_key(section_id: int) -> str:
    return f"{section_prefix(section_id)}master.m3u8"


def master_url(base: str, section_id: int) -> str:
    """master.m3u8's URL under a CDN's or a store's base URL."""
    return f"{base.rstrip('/')}/{master_key(section_id)}"


def video_dir(section_id: int) -> str:
    return f"{section_prefix(section_id)}video/"


def audio_dir(section_id: int, code: str) -> str:
    return f"{section_prefix(section_id)}audio/{code}/"


def subtitles_dir(section_id: int, code: str) -> str:
    return f"{section_prefix(section_id)}subtitles/{code}/"


def subtitles_uri(code: str) -> str:
    """A subtitle rendition's playlist URI as master.m3u8 names it."""
    return f"subtitles/{code}/{SUBTITLES_PLAYLIST}"


def rendition_dir(section_id: int, language: str | None) -> str:
    """Directory of the video rendition (language None) or of one language's audio."""
    return video_dir(section_id) if language is None else audio_dir(section_id, language)


def playlist_name(language: str | None) -> str:
    return VIDEO_PLAYLIST if language is None else AUDIO_PLAYLIST


def master_uri(language: str | None) -> str:
    """A rendition's playlist URI as master.m3u8 names it (relative to the master)."""
    return "video/video.m3u8" if language is None else f"audio/{language}/audio.m3u8"


def language_root(section_id: int, folder: str) -> str:
    """The folder (`audio` or `subtitles`) under which each language has its directory."""
    return f"{section_prefix(section_id)}{folder}/"


def languages_under(section_id: int, keys: list[str], folder: str = "audio") -> set[str]:
    """Languages with objects under a folder (`audio` or `subtitles`) of the section."""
    prefix = language_root(section_id, folder)
    return {k[len(prefix):].split("/", 1)[0] for k in keys if k.startswith(prefix)}


def folder_of(key: str) -> str:
    """The directory a key is in, with its trailing slash."""
    return key.rsplit("/", 1)[0] + "/"


def audio_language_of(key: str) -> str | None:
    """The language of a key in a section's audio folder; None for any other key."""
    parts = key.split("/")
    return parts[4] if len(parts) > 5 and parts[3] == "audio" else None


# -- the reconciler's own objects, outside the assets -------------------------------------

LOCK_PREFIX = "locks/"
# The state index: per section, what the last apply wrote and what observe parses from it (a
# cache checked against LIST, never the truth). Gzipped JSON; never served by the CDN.
STATE_INDEX_KEY = "reconciler-state/index.json.gz"
STATE_INDEX_META = ObjectMeta("application/gzip", "no-store")
DUB_CACHE_ROOT = "dubbing-cache"
JOB_SUFFIX = ".job.json"
TRANSCRIPT_SUFFIX = "-transcript.vtt"


def lock_key(section_id: int) -> str:
    """A section's lease."""
    return f"{LOCK_PREFIX}section-{section_id}.json"


def lock_section(key: str) -> int | None:
    """The section whose lease `key` is (lock_key's inverse); None for any other key."""
    name = key.removeprefix(f"{LOCK_PREFIX}section-").removesuffix(".json")
    return int(name) if name.isdigit() and key == lock_key(int(name)) else None


def dub_cache_prefix(section_id: int) -> str:
    return f"{DUB_CACHE_ROOT}/{section_id}/"


def dub_cache_keys(section_id: int, language: str, key: str) -> tuple[str, str]:
    """(prefix of the cached audio object, the job record) for one dub."""
    base = f"{dub_cache_prefix(section_id)}{language}/{key}"
    return base + ".", base + JOB_SUFFIX


def set_aside_key(cached_key: str) -> str:
    """Where a cached dub that is not usable audio is kept for a look, out of the cache (its
    name no longer starts with the dub's `{key}.` prefix)."""
    base, _dot, suffix = cached_key.rpartition(".")
    return f"{base}-set-aside.{suffix}"


def dub_key_of_transcript(transcript: str) -> str:
    """The dub key a transcript_key was made from (dub keys are hex: no `-`)."""
    return transcript.rsplit("/", 1)[-1].split("-", 1)[0]


def transcript_key(section_id: int, dubbed: str, key: str, spoken: str) -> str:
    """Where a dub's transcript in `spoken` (its language, or `source`) is cached, beside its
    audio (not under the audio's `{key}.` prefix, which names the audio object)."""
    which = "-source" if spoken == "source" else ""
    return f"{dub_cache_prefix(section_id)}{dubbed}/{key}{which}{TRANSCRIPT_SUFFIX}"


def cdn_path(key: str) -> str:
    """CloudFront invalidation path of a key."""
    return "/" + key


def cdn_folder(prefix: str) -> str:
    """CloudFront invalidation path of everything under a folder (a key prefix ending in /)."""
    return cdn_path(prefix) + "*"


# A section's folder exactly as section_prefix spells its id (str(int)): ASCII decimal, no
# sign, no leading zero. `011/`, `+11/`, `١١/` (str.isdigit takes any Unicode digit) are other
# tools' folders, never section 11's.
_SECTION_FOLDER = re.compile(r"0|[1-9][0-9]*")


def section_of(key: str) -> int | None:
    """The section a key belongs to: the id whose canonical folder (`section_prefix`) the key
    is under, else None. The one rule that maps keys to sections: observe groups a LIST by it
    and apply deletes nothing outside it."""
    if not key.startswith(assets_prefix()):
        return None
    head, slash, _ = key[len(assets_prefix()):].partition("/")
    return int(head) if slash and _SECTION_FOLDER.fullmatch(head) else None


def in_section(section_id: int, key: str) -> bool:
    """Whether a key is one of the section's own objects (under its canonical folder)."""
    return section_of(key) == section_id
