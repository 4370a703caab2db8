"""The state index: one object in the bucket holding, per section, a record of what a read
found there (every object's ETag, size and LastModified, the headers known, and the facts
observe parses from master, playlists and inits), so observing a converged catalogue is one LIST
and one GET, as Terraform keeps state and refreshes it.

It is a cache, never the truth: observe uses a record only when the LIST of its section shows
exactly the recorded objects and the record passes a full read's checks (from_record, below),
and anything else - an unreadable index, an unknown version - reads as no index. Writers
(apply, through recording.py) record observations, never intentions, and change only their own
sections' records,
with a conditional write retried on conflict, so concurrent applies of different sections
merge; a failed update only costs the next observe a full read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import astuple, replace

from . import layout
from .hls import MediaPlaylist, Segment
from .mp4 import TrackInfo
from .observed import (
    ObservedSection,
    Rendition,
    SubtitleRendition,
    media_problems,
    renditions,
    subtitle_problems,
    unvouched,
)
from .store import ObjectInfo, PreconditionFailed, Store, StoreError

VERSION = 1
ATTEMPTS = 5  # conditional writes lost to other applies before giving up (a warning)

Records = dict[int, dict]
# An index is about 0.9 MiB per 41,000 objects once decompressed; a body that inflates past this
# is not one (a gzip bomb, or another tool's file) and reads as no index.
MAX_DECODED = 512 * 1024 * 1024


def _decode(body: bytes) -> Records | None:
    """The records of an index body, or None when it is not one this version can read."""
    try:
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
        text = inflate.decompress(body, MAX_DECODED)
        if inflate.unconsumed_tail or not inflate.eof:
            return None
        doc = json.loads(text)
    except (zlib.error, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return None
    sections = doc.get("sections")
    if not isinstance(sections, dict):
        return None
    try:
        return {int(sid): rec for sid, rec in sections.items() if isinstance(rec, dict)}
    except ValueError:
        return None


def _encode(records: Records) -> bytes:
    doc = {"version": VERSION, "sections": {str(sid): records[sid] for sid in sorted(records)}}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6)


def load_index(store: Store) -> Records:
    """Every section's record (one GET); {} when there is no index or it cannot be read."""
    got = store.get(layout.STATE_INDEX_KEY)
    if got is None:
        return {}
    return _decode(got[0]) or {}


def update_index(store: Store, records: dict[int, dict | None]) -> None:
    """Set (or, for None, remove) these sections' records, leaving every other section's as
    another writer left it: read, merge, write with If-Match on the ETag read (If-None-Match
    when there was none), again on conflict. Raises StoreError when it cannot."""
    if not records:
        return
    for _ in range(ATTEMPTS):
        got = store.get(layout.STATE_INDEX_KEY)
        before = (_decode(got[0]) or {}) if got else {}  # an unreadable index is replaced
        merged = dict(before)
        for sid, record in records.items():
            if record is None:
                merged.pop(sid, None)
            else:
                merged[sid] = record
        if merged == before:
            return
        try:
            store.put_bytes(layout.STATE_INDEX_KEY, _encode(merged), layout.STATE_INDEX_META,
                            if_match=got[1].etag if got else None, if_none_match=got is None)
            return
        except PreconditionFailed:
            continue
    raise StoreError(f"state index {layout.STATE_INDEX_KEY}: changed by other writers "
                     f"{ATTEMPTS} times in a row")


# -- the state index's record of a section (state.py keeps them) ---------------------------


def _playlist_record(playlist: MediaPlaylist) -> list:
    segments = playlist.segments
    return [playlist.target_duration, playlist.map_uri, playlist.endlist,
            [s.uri for s in segments], [s.duration for s in segments]]


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
        "headers": {k[cut:]: _meta_record(i.meta)
                    for k, i in obs.objects.items() if i.meta is not None},
        "master": obs.master_text,
        "renditions": {name: {
            "info": rend.playlist_info.key[cut:] if rend.playlist_info else None,
            "playlist": _playlist_record(rend.playlist) if rend.playlist else None,
            "track": astuple(rend.track) if rend.track else None,
            "problems": rend.problems,
        } for name, rend in renditions(obs) if rend.exists or rend.problems},
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
        for rel, meta in record["headers"].items():
            obs.objects[prefix + rel] = replace(obs.objects[prefix + rel],
                                                meta=_meta_from(meta))
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


def _meta_record(meta: layout.ObjectMeta) -> list:
    """An object's metadata as the record keeps it: its headers in ObjectMeta's order, then its
    user metadata."""
    return [*(getattr(meta, name) for name in layout.ObjectMeta.header_fields()),
            dict(meta.user_metadata)]


def _meta_from(rec: list) -> layout.ObjectMeta:
    """A recorded object's metadata: its headers in ObjectMeta's order (null, as older records
    have it, for an absent one), then its user metadata. A record with another number of
    headers (from before one was added, or after) raises ValueError: its section is read."""
    *headers, user_metadata = rec
    names = layout.ObjectMeta.header_fields()
    if len(headers) != len(names) or not all(h is None or isinstance(h, str) for h in headers):
        raise ValueError("not an object's metadata record")
    return layout.ObjectMeta(**dict(zip(names, (h or "" for h in headers), strict=True)),
                             user_metadata=dict(user_metadata))


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
    if info.key != directory + name or info.meta is None:
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
    if init.meta is None:  # a read GETs it
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
    if (master is None) != (obs.master_text is None) or (master and master.meta is None):
        return False
    folders = {"video": layout.rendition_dir(sid, None)}
    folders |= {f"audio/{c}": layout.rendition_dir(sid, c)
                for c in layout.languages_under(sid, keys)}
    folders |= {f"subtitles/{c}": layout.subtitles_dir(sid, c)
                for c in layout.languages_under(sid, keys, "subtitles")}
    holding = {name for name, folder in folders.items() if any(k.startswith(folder) for k in keys)}
    if names != holding:
        return False
    rends = dict(renditions(obs))
    return all(_expected_problems(obs, folders[name], rends[name])
               for name in names) and not unvouched(obs, deep=False)
