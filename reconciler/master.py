"""What master.m3u8 states: the facts of each complete rendition and the playlist composed
from them (pure; apply writes it, the planner compares it with what is published)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from . import layout
from .hls import (
    AudioRendition,
    MediaPlaylist,
    SubtitleRendition,
    VideoVariant,
    bitrates,
    render_master,
)
from .manifest import Language, Section
from .mp4 import TrackInfo
from .observed import STAMP_FRAME_RATE, ObservedSection, Rendition

# -- facts that master.m3u8 states --------------------------------------------------------


# -- facts that master.m3u8 states --------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """A complete rendition's playlist, init track and segment sizes."""

    playlist: MediaPlaylist
    track: TrackInfo
    sizes: Mapping[str, int]
    frame_rate: float | None = None


def observed_facts(obs: ObservedSection, rend: Rendition) -> Facts | None:
    if not rend.complete:
        return None
    assert rend.playlist is not None and rend.track is not None
    rate = rend.stamp.get(STAMP_FRAME_RATE)
    return Facts(
        rend.playlist, rend.track, obs.sizes(rend.language), float(rate) if rate else None
    )


def master_languages(section: Section, ready: Mapping[str, Facts]) -> list[Language]:
    return [lang for lang in section.languages if lang.code in ready]


def compose_master(section: Section, video: Facts, audio: Mapping[str, Facts],
                   texts: Collection[str] = ()) -> str:
    """master.m3u8 for the ready languages, in manifest order; the manifest's default if it is
    ready, else the first ready language. `texts`: languages whose subtitles are ready."""
    langs = master_languages(section, audio)
    default = next((lang.code for lang in langs if lang.default), langs[0].code if langs else None)
    vpeak, vavg = bitrates(video.playlist, video.sizes)
    renditions = []
    for lang in langs:
        facts = audio[lang.code]
        peak, avg = bitrates(facts.playlist, facts.sizes)
        renditions.append(
            AudioRendition(
                language=lang.code,
                name=lang.name,
                default=lang.code == default,
                codec=facts.track.codec,
                channels=facts.track.channels or 2,
                peak_bps=peak,
                avg_bps=avg,
                uri=layout.master_uri(lang.code),
            )
        )
    variant = VideoVariant(
        codec=video.track.codec,
        width=video.track.width or 0,
        height=video.track.height or 0,
        frame_rate=video.frame_rate,
        peak_bps=vpeak,
        avg_bps=vavg,
    )
    subs = [SubtitleRendition(lang.code, lang.name, layout.subtitles_uri(lang.code))
            for lang in section.languages if lang.code in texts]
    return render_master(variant, renditions, subs)
