"""Renditions another tool wrote (no stamp: the hand-run scripts of the original spec) are
adopted only when they are what the manifest declares (duration, codec, resolution, frame
rate); `reconcile import` is the plan cut to adopting. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .observed import Rendition, UnstampedVideo
from .packager import AUDIO_CHANNELS, AUDIO_RATE
from .plan import (
    Action,
    Kind,
    PlanError,
    Problem,
    SectionPlan,
)

# -- facts that master.m3u8 states --------------------------------------------------------


# -- adopting renditions another tool wrote --------------------------------------------------

ADOPT_TOLERANCE = 1.0  # seconds an adopted rendition may last more or less than it must
FRAME_RATE_TOLERANCE = 0.01  # relative difference of two frame rates still taken as one
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC, as every audio rendition is encoded
H264_ENTRIES = ("avc1", "avc3")  # sample entries of H.264, the one video codec packaged


@dataclass(frozen=True)
class Check:
    """An unstamped rendition checked against what it must be: why it is not (None when it
    is) and what it was checked against (recorded on it when adopted)."""

    mismatch: str | None
    against: str
    frame_rate: str | None = None  # the video's, stamped as the reconciler's own renditions


def check_video(rend: Rendition, found: UnstampedVideo | None) -> Check:
    """An unstamped video rendition against the manifest's video, both read from the media:
    duration (within ADOPT_TOLERANCE), codec, resolution and frame rate."""
    assert rend.playlist is not None and rend.track is not None  # a complete rendition
    lasts, track = rend.playlist.duration, rend.track
    declared = found.declared if found else None
    if declared is None:
        return Check("the manifest's video cannot be probed", "")
    against = (f"video {declared.duration:.2f}s {declared.video_codec} "
               f"{declared.width}x{declared.height} {declared.frame_rate or 0:g}fps")
    mine = found.frame_rate if found else None
    theirs = declared.frame_rate
    if abs(lasts - declared.duration) > ADOPT_TOLERANCE:
        why = f"it lasts {lasts:.1f}s, the video {declared.duration:.1f}s"
    elif track.codec.split(".")[0] not in H264_ENTRIES or declared.video_codec != "h264":
        why = f"it is {track.codec}, the video {declared.video_codec}"
    elif (track.width, track.height) != (declared.width, declared.height):
        why = f"it is {track.width}x{track.height}, the video {declared.width}x{declared.height}"
    elif not mine or not theirs or abs(mine - theirs) > FRAME_RATE_TOLERANCE * theirs:
        why = f"it runs at {mine or '?'} fps, the video at {theirs or '?'}"
    else:
        why = None
    return Check(why, against, f"{theirs:g}" if theirs else None)


def check_audio(rend: Rendition, video: Rendition) -> Check:
    """An unstamped audio rendition against what every audio rendition is: as long as the
    video (within ADOPT_TOLERANCE), AAC-LC, 48 kHz, stereo."""
    assert rend.playlist is not None and rend.track is not None  # a complete rendition
    assert video.playlist is not None  # the video was kept, so it is complete
    lasts, track, wanted = rend.playlist.duration, rend.track, video.playlist.duration
    against = f"video {wanted:.2f}s; {AUDIO_CODEC} {AUDIO_RATE}Hz {AUDIO_CHANNELS}ch"
    if abs(lasts - wanted) > ADOPT_TOLERANCE:
        return Check(f"it lasts {lasts:.1f}s, the video {wanted:.1f}s", against)
    if (track.codec, track.sample_rate, track.channels) != (AUDIO_CODEC, AUDIO_RATE,
                                                            AUDIO_CHANNELS):
        return Check(f"it is {track.codec} {track.sample_rate}Hz {track.channels}ch, not "
                     f"{AUDIO_CODEC} {AUDIO_RATE}Hz {AUDIO_CHANNELS}ch", against)
    return Check(None, against)


# What `reconcile import` does: writes of metadata and playlists, never of media.
IMPORTED = (Kind.ADOPT, Kind.FIX_METADATA, Kind.REWRITE_PLAYLIST, Kind.WRITE_MASTER)


def adopt_only(sp: SectionPlan) -> SectionPlan:
    """The section's plan cut to adopting what is there (`reconcile import`): each rendition
    it would encode instead is an error saying why (the next apply rebuilds it), and stays as
    it is; master is written from the renditions that are there, as apply writes it."""
    built = [a for a in sp.actions if a.type in (Kind.PACKAGE_VIDEO, Kind.PACKAGE_AUDIO,
                                                 Kind.PACKAGE_SUBTITLES)]
    errors = [PlanError(sp.section_id, a.language, Problem.ADOPT,
                        f"{_what(a)} not adopted: {a.reason}; `reconcile apply` rebuilds it")
              for a in built]
    return replace(sp, actions=tuple(a for a in sp.actions if a.type in IMPORTED),
                   errors=sp.errors + tuple(errors))


def _what(action: Action) -> str:
    return {Kind.PACKAGE_VIDEO: "video", Kind.PACKAGE_AUDIO: "audio"}.get(action.type,
                                                                         "subtitles")
