"""HLS playlists: media playlist round trips, the target-duration rule, PlaylistError cases,
attribute lists, the master playlist's CODECS/BANDWIDTH/FRAME-RATE and its round trip, and
bit rates from segment sizes."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.hls import (
    AudioRendition,
    MediaPlaylist,
    PlaylistError,
    Segment,
    VideoVariant,
    bitrates,
    parse_attributes,
    parse_master,
    parse_media,
    render_master,
    render_media,
    target_duration,
)

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:5
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.000000,
v_000.m4s
#EXTINF:4.166667,
v_001.m4s

#EXTINF:1.500000,no title needed
v_002.m4s
#EXT-X-ENDLIST
"""

# -- media playlists --------------------------------------------------------------------------


def test_parse_media_reads_an_ffmpeg_style_playlist():
    playlist = parse_media(FFMPEG_PLAYLIST)
    assert playlist == MediaPlaylist(
        target_duration=5,
        segments=(Segment("v_000.m4s", 4.0), Segment("v_001.m4s", 4.166667),
                  Segment("v_002.m4s", 1.5)),
        map_uri="init.mp4",
        endlist=True,
    )
    assert playlist.duration == pytest.approx(9.666667)


def test_render_media_writes_the_reconcilers_header_and_six_decimals():
    text = render_media(MediaPlaylist(4, (Segment("a_000.m4s", 3.2), Segment("a_001.m4s", 1 / 3))))
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n"
        "#EXTINF:3.200000,\na_000.m4s\n#EXTINF:0.333333,\na_001.m4s\n#EXT-X-ENDLIST\n"
    )


def test_render_without_endlist_round_trips():
    playlist = MediaPlaylist(2, (Segment("s.m4s", 2.0),), "init.mp4", endlist=False)
    text = render_media(playlist)
    assert "#EXT-X-ENDLIST" not in text
    assert parse_media(text) == playlist


URIS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,30}\.m4s", fullmatch=True)
DURATIONS = st.floats(min_value=0.1, max_value=12, allow_nan=False, allow_infinity=False)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(st.tuples(URIS, DURATIONS), min_size=1, max_size=50), st.booleans())
def test_media_round_trip(segments, endlist):
    playlist = MediaPlaylist(
        target_duration(d for _, d in segments),
        tuple(Segment(uri, d) for uri, d in segments),
        "init.mp4",
        endlist,
    )
    parsed = parse_media(render_media(playlist))
    assert parsed.target_duration == playlist.target_duration
    assert parsed.map_uri == "init.mp4" and parsed.endlist is endlist
    assert [s.uri for s in parsed.segments] == [uri for uri, _ in segments]
    assert [s.duration for s in parsed.segments] == [float(f"{d:.6f}") for _, d in segments]
    # idempotent once durations carry six decimals
    assert parse_media(render_media(parsed)) == parsed


# Durations as ffmpeg writes them (microsecond precision): what the reconciler feeds in.
MICRO_DURATIONS = st.integers(min_value=100_000, max_value=12_000_000).map(lambda us: us / 1e6)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(MICRO_DURATIONS, min_size=1, max_size=50))
def test_target_duration_rule_holds_for_every_rendered_extinf(durations):
    target = target_duration(durations)
    text = render_media(MediaPlaylist(target, tuple(Segment(f"s{i}.m4s", d)
                                                    for i, d in enumerate(durations))))
    extinfs = [float(x) for x in re.findall(r"^#EXTINF:([0-9.]+),", text, re.M)]
    assert len(extinfs) == len(durations)
    assert all(math.floor(d + 0.5) <= target for d in extinfs)
    # and it is the smallest such integer (never less than 1)
    assert target == max(1, max(math.floor(d + 0.5) for d in extinfs))


@pytest.mark.parametrize(("durations", "target"), [
    ([4.0, 4.0, 2.0], 4),
    ([4.49], 4),
    ([4.5], 5),          # half rounds up: 4.5 -> 5, so 4 would violate the rule
    ([3.999, 6.02], 6),
    ([0.3], 1),          # never 0
    ([], 1),
    ([11.9, 0.1], 12),
])
def test_target_duration_examples(durations, target):
    assert target_duration(durations) == target


def test_target_duration_accepts_a_generator():
    assert target_duration(d for d in (1.0, 2.6)) == 3


@pytest.mark.parametrize(("text", "reason"), [
    ("", "#EXTM3U"),
    ("#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.m4s\n", "#EXTM3U"),
    ("\n#EXTM3U\n#EXT-X-TARGETDURATION:4\n", "#EXTM3U"),
    ("#EXTM3U\n#EXTINF:4.0,\na.m4s\n#EXT-X-ENDLIST\n", "TARGETDURATION"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:4\na.m4s\n", "has no #EXTINF"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.m4s\nb.m4s\n", "'b.m4s' has no #EXTINF"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:four\n", "bad"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:abc,\na.m4s\n", "bad"),
])
def test_parse_media_errors(text, reason):
    with pytest.raises(PlaylistError, match=re.escape(reason)):
        parse_media(text)


def test_parse_media_rejects_a_master_playlist():
    master = render_master(VIDEO, [KO, EN])
    with pytest.raises(PlaylistError, match="master"):
        parse_media(master)
    with pytest.raises(PlaylistError, match="master"):
        parse_media(render_master(VIDEO, []))


def test_playlist_error_is_a_value_error():
    assert issubclass(PlaylistError, ValueError)


# -- attribute lists --------------------------------------------------------------------------


def test_parse_attributes_keeps_commas_inside_quotes():
    attrs = parse_attributes(
        'BANDWIDTH=1280000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=640x360,'
        'NAME="Portuguese, Brazil",URI="audio/pt-BR/audio.m3u8?a=1,b=2",FRAME-RATE=23.976')
    assert attrs == {
        "BANDWIDTH": "1280000",
        "CODECS": "avc1.64001f,mp4a.40.2",
        "RESOLUTION": "640x360",
        "NAME": "Portuguese, Brazil",
        "URI": "audio/pt-BR/audio.m3u8?a=1,b=2",
        "FRAME-RATE": "23.976",
    }


def test_parse_attributes_empty_and_quoted_empty():
    assert parse_attributes("") == {}
    assert parse_attributes('NAME="",DEFAULT=NO') == {"NAME": "", "DEFAULT": "NO"}


# -- master playlists -------------------------------------------------------------------------

VIDEO = VideoVariant("avc1.64001f", 1280, 720, 29.97002997, peak_bps=2_000_000,
                     avg_bps=1_500_000)
KO = AudioRendition("ko", "Korean", True, "mp4a.40.2", 2, peak_bps=140_000, avg_bps=128_000,
                    uri="audio/ko/audio.m3u8")
EN = AudioRendition("en", "English", False, "mp4a.40.5", 2, peak_bps=170_000, avg_bps=96_000,
                    uri="audio/en/audio.m3u8")
ZH = AudioRendition("zh-Hans", "Chinese (Simplified)", False, "mp4a.40.2", 1, peak_bps=90_000,
                    avg_bps=130_000, uri="audio/zh-Hans/audio.m3u8")


def stream_inf(text: str) -> dict[str, str]:
    [line] = [ln for ln in text.splitlines() if ln.startswith("#EXT-X-STREAM-INF:")]
    return parse_attributes(line.split(":", 1)[1])


@pytest.mark.parametrize("defaults", [(False, False, False), (True, True, False),
                                      (True, True, True)])
def test_render_master_needs_exactly_one_default(defaults):
    audios = [AudioRendition(c, c.upper(), d, "mp4a.40.2", 2, 1, 1, f"audio/{c}/audio.m3u8")
              for c, d in zip(("ko", "en", "ja"), defaults, strict=True)]
    with pytest.raises(ValueError, match="default"):
        render_master(VIDEO, audios)


def test_render_master_without_audio_has_no_audio_group():
    text = render_master(VIDEO, [])
    attrs = stream_inf(text)
    assert "AUDIO" not in attrs
    assert "#EXT-X-MEDIA" not in text
    assert attrs["CODECS"] == "avc1.64001f"
    assert attrs["BANDWIDTH"] == "2000000" and attrs["AVERAGE-BANDWIDTH"] == "1500000"


def test_render_master_stream_inf():
    text = render_master(VIDEO, [KO, EN, ZH])
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n")
    attrs = stream_inf(text)
    # video codec first, then each distinct audio codec once
    codecs = attrs["CODECS"].split(",")
    assert codecs[0] == "avc1.64001f"
    assert sorted(codecs[1:]) == ["mp4a.40.2", "mp4a.40.5"]
    # BANDWIDTH: video peak + the largest audio peak (EN 170000, not KO or ZH)
    assert attrs["BANDWIDTH"] == str(2_000_000 + 170_000)
    # AVERAGE-BANDWIDTH: video average + the largest audio average (ZH 130000)
    assert attrs["AVERAGE-BANDWIDTH"] == str(1_500_000 + 130_000)
    assert attrs["RESOLUTION"] == "1280x720"
    assert attrs["FRAME-RATE"] == "29.970"
    assert attrs["AUDIO"] == "aud"
    assert text.endswith("\nvideo/video.m3u8\n")


def test_render_master_media_lines():
    text = render_master(VIDEO, [KO, EN, ZH])
    media = [parse_attributes(ln.split(":", 1)[1]) for ln in text.splitlines()
             if ln.startswith("#EXT-X-MEDIA:")]
    assert [m["LANGUAGE"] for m in media] == ["ko", "en", "zh-Hans"]  # manifest order kept
    assert [m["DEFAULT"] for m in media] == ["YES", "NO", "NO"]
    assert [m["NAME"] for m in media] == ["Korean", "English", "Chinese (Simplified)"]
    assert [m["CHANNELS"] for m in media] == ["2", "2", "1"]
    assert {m["TYPE"] for m in media} == {"AUDIO"}
    assert {m["GROUP-ID"] for m in media} == {"aud"}
    assert {m["AUTOSELECT"] for m in media} == {"YES"}


@pytest.mark.parametrize(("rate", "shown"), [
    (24.0, "24.000"), (25, "25.000"), (23.976023976, "23.976"), (59.94005994, "59.940"),
    (30000 / 1001, "29.970"), (None, None),
])
def test_frame_rate_has_three_decimals_or_is_omitted(rate, shown):
    video = VideoVariant("avc1.42c01e", 640, 360, rate, 800_000, 700_000)
    attrs = stream_inf(render_master(video, [KO]))
    assert attrs.get("FRAME-RATE") == shown


def test_master_round_trip():
    text = render_master(VIDEO, [KO, EN, ZH])
    master = parse_master(text)
    assert master.audio_uris() == {
        "ko": "audio/ko/audio.m3u8",
        "en": "audio/en/audio.m3u8",
        "zh-Hans": "audio/zh-Hans/audio.m3u8",
    }
    [(attrs, uri)] = master.variants
    assert uri == "video/video.m3u8"
    assert attrs == stream_inf(text)
    assert len(master.media) == 3


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["ko", "en", "ja", "zh-Hans", "pt-BR", "es", "fr", "de"]),
                min_size=1, max_size=8, unique=True),
       st.data())
def test_master_round_trip_property(codes, data):
    default = data.draw(st.integers(0, len(codes) - 1))
    peaks = data.draw(st.lists(st.integers(1, 10**6), min_size=len(codes), max_size=len(codes)))
    audios = [AudioRendition(c, f"Name {c}", i == default, "mp4a.40.2", 2, p, p // 2,
                             f"audio/{c}/audio.m3u8")
              for i, (c, p) in enumerate(zip(codes, peaks, strict=True))]
    master = parse_master(render_master(VIDEO, audios))
    assert master.audio_uris() == {c: f"audio/{c}/audio.m3u8" for c in codes}
    assert [m["DEFAULT"] for m in master.media] == [
        "YES" if i == default else "NO" for i in range(len(codes))]
    attrs = master.variants[0][0]
    assert int(attrs["BANDWIDTH"]) == VIDEO.peak_bps + max(peaks)
    assert int(attrs["AVERAGE-BANDWIDTH"]) == VIDEO.avg_bps + max(p // 2 for p in peaks)


def test_parse_master_errors():
    with pytest.raises(PlaylistError, match="media playlist"):
        parse_master(FFMPEG_PLAYLIST)
    with pytest.raises(PlaylistError, match="no #EXT-X-STREAM-INF"):
        parse_master("#EXTM3U\n#EXT-X-VERSION:7\n")
    with pytest.raises(PlaylistError, match="#EXTM3U"):
        parse_master("#EXT-X-STREAM-INF:BANDWIDTH=1\nvideo.m3u8\n")


# -- bit rates --------------------------------------------------------------------------------


def test_bitrates_from_known_sizes():
    playlist = MediaPlaylist(4, (Segment("a.m4s", 4.0), Segment("b.m4s", 2.0),
                                 Segment("c.m4s", 3.0)))
    sizes = {"a.m4s": 100_000, "b.m4s": 60_000, "c.m4s": 75_000, "unused.m4s": 10**9}
    # peaks: a 800000/4 = 200000, b 480000/2 = 240000, c 600000/3 = 200000 -> 240000
    # average: (100000 + 60000 + 75000) * 8 / 9 = 1880000 / 9 = 208888.9 -> 208889 (ceil)
    assert bitrates(playlist, sizes) == (240_000, 208_889)


def test_bitrates_round_up_fractional_rates():
    playlist = MediaPlaylist(4, (Segment("a.m4s", 3.0),))
    # 1001 bytes * 8 / 3 s = 2669.33 b/s -> 2670 for both peak and average
    assert bitrates(playlist, {"a.m4s": 1001}) == (2670, 2670)


def test_bitrates_skip_zero_duration_segments_for_the_peak():
    playlist = MediaPlaylist(2, (Segment("a.m4s", 2.0), Segment("z.m4s", 0.0)))
    # peak only from a: 1000*8/2 = 4000; average counts z's bytes: 1500*8/2 = 6000
    assert bitrates(playlist, {"a.m4s": 1000, "z.m4s": 500}) == (4000, 6000)


def test_bitrates_of_an_empty_playlist_and_a_missing_size():
    assert bitrates(MediaPlaylist(1, ()), {}) == (0, 0)
    with pytest.raises(KeyError):
        bitrates(MediaPlaylist(4, (Segment("a.m4s", 4.0),)), {"b.m4s": 1})


# -- the writer refuses what a quoted-string or a line cannot carry (issue 11) ----------------

LINE_BREAKERS = ["\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x00", "\x1f",
                 "\x7f", "\x9f"]


@pytest.mark.parametrize("bad", [*LINE_BREAKERS, '"'])
@pytest.mark.parametrize("field", ["name", "language", "uri"])
def test_render_master_refuses_values_a_quoted_string_cannot_carry(bad, field):
    video = VideoVariant("avc1.64001e", 640, 360, 24.0, 800_000, 700_000)
    good = dict(language="ko", name="Korean", default=True, codec="mp4a.40.2", channels=2,
                peak_bps=1, avg_bps=1, uri="audio/ko/audio.m3u8")
    good[field] = f"Ko{bad}x"
    with pytest.raises(PlaylistError, match=field.upper()):
        render_master(video, [AudioRendition(**good)])


@pytest.mark.parametrize("bad", LINE_BREAKERS)
def test_render_media_and_variant_refuse_uris_a_line_splitter_would_split(bad):
    with pytest.raises(PlaylistError, match="segment URI"):
        render_media(MediaPlaylist(4, (Segment(f"a{bad}b.m4s", 4.0),)))
    with pytest.raises(PlaylistError, match="variant URI"):
        render_master(VideoVariant("avc1.64001e", 640, 360, None, 1, 1, uri=f"v{bad}.m3u8"), [])
