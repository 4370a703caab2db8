"""The fixed key layout and the metadata table: the contract with CloudFront and the players.

Every module that names an object or decides its headers asks this one; nothing else spells a
key or a Content-Type.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """Headers an object must carry in the store (and CloudFront passes through)."""

    content_type: str
    cache_control: str
    sse: str = SSE


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


def master_key(section_id: int) -> str:
    return f"{section_prefix(section_id)}master.m3u8"


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


def cdn_path(key: str) -> str:
    """CloudFront invalidation path of a key."""
    return "/" + key


def section_of(key: str) -> int | None:
    """Section id of an assets key, or None."""
    if not key.startswith(ASSETS_ROOT + "/"):
        return None
    head = key[len(ASSETS_ROOT) + 1 :].split("/", 1)[0]
    return int(head) if head.isdigit() else None
