"""Subtitles: WebVTT/SRT parsing and checks (pure), and subtitle renditions end to end against
moto: layout, metadata, master lines, one shared TARGETDURATION, minimal changes."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest
from cli_helpers import reconcile
from conftest import KO_EN
from test_reconcile_s3 import PREFIX, invalidations, keys

from reconciler import board, subtitles
from reconciler.hls import parse_master, parse_media
from reconciler.observe import observe
from reconciler.store import open_store
from reconciler.subtitles import SubtitleError

SRT = """1
00:00:00,500 --> 00:00:02,000
안녕하세요

2
00:00:04,500 --> 00:00:06,000
<i>second</i> line
two
"""

VTT = """WEBVTT
Kind: captions

NOTE a comment

intro
00:00.500 --> 00:02.000 align:start
Hello

00:00:03.000 --> 00:00:05.000
Across a boundary
"""


def test_srt_and_webvtt_parse_to_the_same_kind_of_cues():
    srt = subtitles.parse(SRT.encode(), "ko.srt")
    assert [(c.start, c.end, c.text, c.line) for c in srt.cues] == [
        (0.5, 2.0, "안녕하세요", 2), (4.5, 6.0, "<i>second</i> line\ntwo", 6)]
    vtt = subtitles.parse(("\ufeff" + VTT).replace("\n", "\r\n").encode(), "en.vtt")
    assert [(c.start, c.end, c.text, c.line, c.settings, c.identifier) for c in vtt.cues] == [
        (0.5, 2.0, "Hello", 7, "align:start", "intro"),
        (3.0, 5.0, "Across a boundary", 10, "", "")]


@pytest.mark.parametrize("data, message", [
    (b"hello world\n", "x.vtt:1: neither WebVTT"),
    ("WEBVTT\n\n00:01.000 --> 00:02.000\nok\n".encode("utf-16-le"),
     "x.vtt:1: NUL byte: not a text file, or UTF-16 without a byte-order mark; save it as "
     "UTF-8 (iconv -f UTF-16LE -t UTF-8 FILE > FILE.utf8)"),
    ("1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n".encode("latin-1"),
     "x.vtt:3: not UTF-8 text (byte 0xe9); save it as UTF-8 (e.g. iconv -f CP949"),
    ("1\n00:00:01,000 --> 00:00:02,000\n안녕하세요\n".encode("cp949"),
     "x.vtt:3: not UTF-8 text (byte 0xbe); it reads as CP949 (EUC-KR) Korean: convert it "
     "(iconv -f CP949 -t UTF-8 FILE > FILE.utf8)"),
    (b"WEBVTT\n\n00:01.000 --> 00:0x.000\nbad\n", "x.vtt:3: bad cue timing"),
    (b"WEBVTT\n\n00:01.000 --> 00:02.000\n\n", "x.vtt:3: cue has no text"),
    (b"WEBVTT\n\nsome words\nmore words\n", "x.vtt:3: expected a cue timing line"),
    (b"1\n00:00:01,000 --> 00:00:02,000\na\n\ngarbage\n", "x.vtt:5: expected an SRT cue"),
])
def test_files_that_are_not_subtitles_are_refused_naming_file_and_line(data, message):
    with pytest.raises(SubtitleError, match=re.escape(message)):
        subtitles.parse(data, "x.vtt")


@pytest.mark.parametrize("body, duration, message", [
    ("00:01.000 --> 00:02.000\na\n\n00:09.000 --> 00:09.500\nb\n", 8.0,
     "x.vtt:6: cue 00:00:09.000 --> 00:00:09.500 is past the video's end (00:00:08.000)"),
    ("00:07.000 --> 00:09.500\nlong\n", 8.0, "x.vtt:3: cue 00:00:07.000 --> 00:00:09.500 is past"),
    ("00:03.000 --> 00:04.000\na\n\n00:01.000 --> 00:02.000\nb\n", 8.0,
     "x.vtt:6: cue starts before the cue at line 3"),
    ("00:03.000 --> 00:02.000\na\n", 8.0, "x.vtt:3: cue ends (2.000s) before it starts"),
])
def test_cues_that_do_not_fit_the_video_are_refused(body, duration, message):
    cues = subtitles.parse(f"WEBVTT\n\n{body}".encode(), "x.vtt")
    with pytest.raises(SubtitleError, match=re.escape(message)):
        subtitles.check(cues, "x.vtt", duration)


def test_segments_follow_the_video_boundaries_with_the_timestamp_map():
    cues = subtitles.check(subtitles.parse(VTT.encode(), "en.vtt"), "en.vtt", 8.0)
    assert subtitles.check(subtitles.parse(b"WEBVTT\n\n00:07.000 --> 00:08.600\nend\n", "e"),
                           "e", 8.0).cues[0].end == 8.0  # within the tolerance: clamped
    docs = subtitles.segments(cues, [4.0, 4.0])
    header = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"
    assert docs[0] == (header + "\nintro\n00:00:00.500 --> 00:00:02.000 align:start\nHello\n"
                       "\n00:00:03.000 --> 00:00:05.000\nAcross a boundary\n\n")
    assert docs[1] == header + "\n00:00:03.000 --> 00:00:05.000\nAcross a boundary\n\n"
    assert subtitles.segments(cues, [6.0, 2.0])[1] == header + "\n"  # no cue: still WebVTT


def ffmpeg_reads(document: str) -> str:
    """What ffmpeg's WebVTT reader (a real, strict parser) makes of a document, as SRT."""
    return subprocess.run(["ffmpeg", "-v", "error", "-f", "webvtt", "-i", "pipe:0", "-f", "srt",
                           "pipe:1"], input=document.encode(), capture_output=True, timeout=60,
                          check=True).stdout.decode()


def published_texts(data: bytes, durations=(4.0, 4.0), label="x.srt") -> list[str]:
    return subtitles.segments(subtitles.check(subtitles.parse(data, label), label, 8.0),
                              list(durations))


def test_code_in_an_srt_cue_reaches_the_viewer_whole():
    srt = ("1\n00:00:01,000 --> 00:00:02,000\nif a < b && c > d then <i>x</i>\n\n"
           "2\n00:00:02,500 --> 00:00:03,000\n<font color=\"#ff0\">AT&T</font> <b>&amp;</b>\n")
    [first, _] = published_texts(srt.encode())
    assert "if a &lt; b &amp;&amp; c &gt; d then <i>x</i>\n" in first
    read = ffmpeg_reads(first)
    assert "if a < b && c > d then <i>x</i>\n" in read
    assert "AT&T <b>&amp;</b>\n" in read  # SRT has no entities: `&amp;` is its text


def test_a_stray_lt_or_amp_in_a_vtt_cue_is_escaped_and_its_markup_kept():
    vtt = ("WEBVTT\n\n00:01.000 --> 00:02.000\n<v Ann>x < y & z &lt; <c.hot>w</c> "
           "<00:00:01.500>late\n")
    [first, _] = published_texts(vtt.encode(), label="x.vtt")
    assert ("<v Ann>x &lt; y &amp; z &lt; <c.hot>w</c> <00:00:01.500>late\n") in first
    assert "x < y & z < " in ffmpeg_reads(first)


@pytest.mark.parametrize(("tag", "settings"), [
    ("{\\an8}", " line:0"), ("{\\an7}", " line:0 align:left"),
    ("{\\an5}", " line:50%,center"), ("{\\an3}", " align:right"), ("{\\an2}", ""),
    ("{\\i1}{\\pos(10,20)}", ""),
])
def test_ass_override_tags_become_cue_settings_or_go(tag, settings):
    srt = f"1\n00:00:01,000 --> 00:00:02,000 X1:100 X2:200 Y1:10 Y2:20\n{tag}top text\n"
    [first, _] = published_texts(srt.encode())
    assert f"\n00:00:01.000 --> 00:00:02.000{settings}\ntop text\n" in first
    assert "{" not in first and "X1" not in first


def test_every_segment_ends_with_a_blank_line_so_a_reader_never_glues_the_next_header():
    srt = "1\n00:00:01,000 --> 00:00:02,000\nfirst\n\n2\n00:00:05,000 --> 00:00:06,000\nsecond\n"
    docs = published_texts(srt.encode())
    assert all(doc.endswith("\n\n") for doc in docs)
    read = ffmpeg_reads("".join(docs))  # as the HLS demuxer hands a reader the segments
    assert "first\n\n" in read and "WEBVTT" not in read and "X-TIMESTAMP-MAP" not in read


def test_cue_settings_and_identifiers_are_kept_and_style_and_region_said_to_be_dropped():
    vtt = ("WEBVTT\nKind: captions\n\nSTYLE\n::cue(.hot) { color: red }\n\n"
           "REGION\nid:left width:40% lines:3\n\nNOTE not published\n\n"
           "q1\n00:01.000 --> 00:05.000 region:left line:0 align:start\n"
           "<c.hot>{\\an2}{\\an9}hi</c>\n")
    parsed = subtitles.parse(vtt.encode(), "x.vtt")
    assert parsed.dropped == (
        "x.vtt:4: STYLE block dropped (ffmpeg's WebVTT reader stops at one; hls.js ignores it)",
        "x.vtt:7: REGION block dropped (ffmpeg's WebVTT reader stops at one; hls.js ignores it)")
    docs = published_texts(vtt.encode(), label="x.vtt")
    for doc in docs:  # the file's own settings win over those its \\an9 asks for
        assert doc == ("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
                       "q1\n00:00:01.000 --> 00:00:05.000 line:0 align:start\n"
                       "<c.hot>hi</c>\n\n")
        assert "hi\n" in ffmpeg_reads(doc)


@pytest.mark.parametrize("label", ["x.vtt", "transcript of the en dub"])
def test_overlapping_cues_are_published_from_files_and_dub_transcripts_alike(label):
    """Issue 20 item 6: multi-speaker transcripts overlap, and WebVTT allows it."""
    vtt = ("WEBVTT\n\n00:01.000 --> 00:03.000\n<v A>one\n\n00:02.000 --> 00:04.500\n<v B>two\n"
           "\n00:02.500 --> 00:03.000\n<v C>three\n")
    docs = published_texts(vtt.encode(), label=label)
    assert [doc.count(" --> ") for doc in docs] == [3, 1]
    assert ffmpeg_reads(docs[0]).count(" --> ") == 3


def test_utf16_and_utf8_with_a_byte_order_mark_decode_to_the_same_cues():
    text = "1\n00:00:01,000 --> 00:00:02,000\n안녕하세요 <i>x</i>\n"
    expected = subtitles.parse(text.encode(), "x.srt")
    for data in (text.encode("utf-16"), text.encode("utf-16-be").join([b"\xfe\xff", b""]),
                 text.encode("utf-8-sig"), text.replace("\n", "\r\n").encode("utf-16-le")
                 .join([b"\xff\xfe", b""])):
        assert subtitles.parse(data, "x.srt") == expected


def test_a_subtitle_file_over_the_cap_is_refused_naming_it():
    cue = "{}\n00:00:01,000 --> 00:00:02,000\n" + "가" * 3000 + "\n\n"
    big = "".join(cue.format(i) for i in range(1, 1000)).encode()  # a valid 9 MB SRT
    with pytest.raises(SubtitleError, match=r"^big\.srt: 9\.0 MB; a subtitle file may be at "
                                            r"most 8 MiB .* the wrong file\?$"):
        subtitles.parse(big, "big.srt")
    assert len(big) > subtitles.MAX_BYTES


# Chromium's own WebVTT parser reads a published segment through a <track>; what a viewer sees
# is each cue's getCueAsHTML() text.
TRACK_JS = """async (doc) => {
  const video = document.createElement("video");
  const track = document.createElement("track");
  track.src = URL.createObjectURL(new Blob([doc], {type: "text/vtt"}));
  video.appendChild(track);
  document.body.appendChild(video);
  track.track.mode = "hidden";
  await new Promise((ok, fail) => { track.onload = ok; track.onerror = () => fail("error"); });
  return Array.from(track.track.cues,
                    c => [c.startTime, c.endTime, c.line, c.getCueAsHTML().textContent]);
}"""


def test_chromium_shows_the_cue_text_position_and_overlaps_as_written(browser):
    srt = ("1\n00:00:01,000 --> 00:00:03,000\n{\\an8}if a < b && c > d then <i>x</i>\n\n"
           "2\n00:00:02,000 --> 00:00:05,000\nR&D <3\n")
    docs = published_texts(srt.encode())
    page = browser.new_page()
    try:
        seen = [page.evaluate(TRACK_JS, doc) for doc in docs]
    finally:
        page.close()
    assert seen == [[[1, 3, 0, "if a < b && c > d then x"], [2, 5, "auto", "R&D <3"]],
                    [[2, 5, "auto", "R&D <3"]]]


def _subtitled(repo, en_subtitles="../media/en.vtt"):
    (repo.root / "media" / "ko.srt").write_text(SRT, encoding="utf-8")
    (repo.root / "media" / "en.vtt").write_text(VTT, encoding="utf-8")
    return [{**KO_EN[0], "subtitles": "../media/ko.srt"},
            {**KO_EN[1], "subtitles": en_subtitles}]


def test_subtitle_renditions_are_published_beside_the_audio_and_listed_in_master(
        repo, bucket, s3):
    repo.write(11, _subtitled(repo))
    plan = reconcile("--plan", repo.manifests)
    assert "+ package subtitles ko" in plan.stdout and "+ package subtitles en" in plan.stdout
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert reconcile("--plan", repo.manifests).code == 0

    objects = keys(s3, bucket)
    video = parse_media(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/video/video.m3u8")
                        ["Body"].read().decode())
    for code in ("ko", "en"):
        folder = f"{PREFIX}/11/subtitles/{code}/"
        text = s3.get_object(Bucket=bucket, Key=folder + "subtitles.m3u8")["Body"].read().decode()
        playlist = parse_media(text)
        assert "#EXT-X-MAP" not in text
        assert [s.uri for s in playlist.segments] == [
            f"s_{i:03d}.vtt" for i in range(len(video.segments))]
        assert [s.duration for s in playlist.segments] == [s.duration for s in video.segments]
        assert playlist.target_duration == video.target_duration
        for seg in playlist.segments:
            head = s3.head_object(Bucket=bucket, Key=folder + seg.uri)
            assert head["ContentType"] == "text/vtt; charset=utf-8"
            assert head["CacheControl"] == "public, max-age=31536000, immutable"
            assert head["ServerSideEncryption"] == "AES256"
        assert folder + "s_000.vtt" in objects
    first = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/subtitles/ko/s_000.vtt")
    assert first["Body"].read().decode() == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
        "00:00:00.500 --> 00:00:02.000\n안녕하세요\n\n")

    master = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read().decode()
    assert ('#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Korean",LANGUAGE="ko",'
            'AUTOSELECT=YES,DEFAULT=NO,FORCED=NO,URI="subtitles/ko/subtitles.m3u8"') in master
    parsed = parse_master(master)
    assert parsed.uris("SUBTITLES") == {"ko": "subtitles/ko/subtitles.m3u8",
                                        "en": "subtitles/en/subtitles.m3u8"}
    assert parsed.variants[0][0]["SUBTITLES"] == "subs"


def test_adding_subtitles_uploads_only_them_and_master_and_invalidates_only_master(
        repo, bucket, distribution, s3):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    plain = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read()
    assert b"SUBTITLES" not in plain
    before = keys(s3, bucket)
    repo.write(11, _subtitled(repo))
    plan = reconcile("--plan", repo.manifests, "--format", "json")
    actions = [(a["type"], a["language"]) for a in plan.json()["sections"][0]["actions"]]
    assert actions == [("package_subtitles", "ko"), ("package_subtitles", "en"),
                       ("write_master", None)]
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    after = keys(s3, bucket)
    changed = {k for k in after if k not in before or after[k]["ETag"] != before[k]["ETag"]
               or after[k]["LastModified"] != before[k]["LastModified"]}
    assert changed and all(k.startswith(f"{PREFIX}/11/subtitles/")
                           or k == f"{PREFIX}/11/master.m3u8" for k in changed), changed
    assert invalidations(distribution)[-1] == ["/assets/curriculumsection/11/master.m3u8"]

    # Removing them again gives back today's master, byte for byte; --prune deletes them.
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    assert s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read() == plain
    pruned = reconcile("--apply", repo.manifests, "--prune")
    assert "- delete objects subtitles/ko/ (3)" in pruned.stdout + pruned.stderr
    assert not [k for k in keys(s3, bucket) if "/subtitles/" in k]


def test_a_bad_subtitle_file_publishes_nothing_of_it_and_keeps_the_rest(repo, bucket, s3):
    langs = _subtitled(repo)
    (repo.root / "media" / "en.vtt").write_text(
        "WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:20.000 --> 00:21.000\nlate\n")
    repo.write(11, langs)
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 1
    assert "en: package subtitles: ../media/en.vtt:6: cue 00:00:20.000 --> 00:00:21.000 is " \
           "past the video's end" in applied.stdout + applied.stderr
    assert not [k for k in keys(s3, bucket) if "/subtitles/en/" in k]
    master = parse_master(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")
                          ["Body"].read().decode())
    assert list(master.uris("AUDIO")) == ["ko", "en"]  # the audio is not held back
    assert list(master.uris("SUBTITLES")) == ["ko"]
    grid = board.from_observed(observe(open_store(f"s3://{bucket}"), [], extra_ids=[11]))
    assert board.markdown(grid) == ("| section | ko | en |\n|---|---|---|\n"
                                    "| 11 | audio ✓ · subtitles ✓ | audio ✓ · subtitles – |\n")


def test_a_subtitle_path_that_is_not_vtt_or_srt_is_a_manifest_error(repo):
    repo.write(11, [{**KO_EN[0], "subtitles": "../media/en.mp3"}])
    result = reconcile("validate", repo.manifests)
    assert result.code == 1
    assert re.search(r"section-11\.yaml:\d+: languages\[0\]\.subtitles: '\.\./media/en\.mp3' is "
                     r"not a \.vtt or \.srt file", result.stderr), result.stderr


def test_ffprobe_lists_the_subtitle_renditions_from_master_and_verify_checks_them(
        repo, bucket, s3):
    from media_helpers import running

    from reconciler.preview import make_server
    from reconciler.verify import verify

    repo.write(11, _subtitled(repo))
    assert reconcile("--apply", repo.manifests).code == 0
    with running(make_server(open_store(f"s3://{bucket}"), "127.0.0.1", 0)) as base:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-strict", "experimental", "-show_entries",
             "stream=codec_type,codec_name:stream_tags=language", "-of", "csv=p=0",
             f"{base}/assets/curriculumsection/11/master.m3u8"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        report = verify(base, [11])
        assert report.ok, report.failures
        assert report.sections[0].subtitles == ["ko", "en"]
        segment = f"{PREFIX}/11/subtitles/en/s_001.vtt"
        s3.copy_object(Bucket=bucket, Key=segment, CopySource={"Bucket": bucket, "Key": segment},
                       MetadataDirective="REPLACE", ContentType="text/plain",
                       CacheControl="public, max-age=31536000, immutable")
        failures = verify(base, [11]).failures
        assert [(f.url.rsplit("/", 3)[-3:], f.check, f.actual) for f in failures] == [
            (["subtitles", "en", "s_001.vtt"], "content-type", "text/plain")]
        # The status board, through the CDN (verify) and from the store (preview's index).
        board = reconcile("verify", repo.manifests, "--cdn", base, "--format", "markdown")
        assert board.code == 1
        assert board.stdout == ("| section | ko | en |\n|---|---|---|\n"
                                "| 11 | audio ✓ · subtitles ✓ | audio ✓ · subtitles ✗ |\n")
        index = httpx.get(f"{base}/").text
        assert '<td data-lang="en" data-audio="✓" data-subtitles="✓">' in index
        assert '<a href="player.html?section=11">Section 11</a>' in index
    # FFmpeg 5.1 opens HLS subtitle renditions only with -strict experimental.
    subs = {line for line in out.splitlines() if line.startswith("webvtt")}
    assert {"webvtt,subtitle,en", "webvtt,subtitle,ko"} <= subs, out


def test_an_unreadable_subtitle_file_is_a_plan_error_for_its_language(repo, bucket):
    repo.write(11, [{**KO_EN[0], "subtitles": "../media/missing.srt"}])
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 1
    assert "! error: ko: subtitles ../media/missing.srt: no such file" in plan.stdout
    assert "+ package audio ko" in plan.stdout  # the rest of the section is planned


def transcript_requests(eleven) -> list[str]:
    return [path for method, path in eleven.requests if "/transcript/" in path]


def test_dub_transcripts_become_subtitles_in_one_apply_and_are_fetched_once(
        repo, bucket, eleven, s3):
    (repo.root / "media" / "ko.srt").write_text(SRT, encoding="utf-8")
    repo.write(11, [{"code": "ko", "audio": "source", "default": True,
                     "subtitles": "../media/ko.srt"},
                    {"code": "en"}, {"code": "ja"}, {"code": "es"}], subtitles="dub")
    plan = reconcile("--plan", repo.manifests)
    assert all(f"+ package subtitles {c}" in plan.stdout for c in ("ko", "en", "ja", "es"))
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert sorted(c["target_lang"] for c in eleven.creates) == ["en", "es", "ja"]  # paid: 3
    assert sorted(p.rsplit("/", 1)[-1] for p in transcript_requests(eleven)) == [
        "en", "es", "ja"]
    master = parse_master(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")
                          ["Body"].read().decode())
    assert list(master.uris("SUBTITLES")) == ["ko", "en", "ja", "es"]
    first = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/subtitles/ja/s_000.vtt")
    assert "00:00:00.500 --> 00:00:02.500\nja line 1\n" in first["Body"].read().decode()
    cached = [k for k in keys(s3, bucket, "dubbing-cache/11/") if k.endswith("-transcript.vtt")]
    assert len(cached) == 3  # kept next to the paid audio
    assert reconcile("--plan", repo.manifests).code == 0

    # A lost subtitle rendition is rebuilt from the cache: no request to ElevenLabs at all.
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": k} for k in keys(s3, bucket, f"{PREFIX}/11/subtitles/en/")]})
    seen = len(eleven.requests)
    again = reconcile("--apply", repo.manifests)
    assert again.code == 0, again.stdout + again.stderr
    assert len(eleven.requests) == seen
    assert reconcile("--plan", repo.manifests).code == 0


def test_subtitles_added_to_a_dubbed_section_fetch_each_transcript_once_and_pay_nothing(
        repo, bucket, eleven, s3):
    langs = [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}]
    repo.write(11, langs)
    assert reconcile("--apply", repo.manifests).code == 0
    assert len(eleven.creates) == 1 and transcript_requests(eleven) == []  # not asked for
    before = keys(s3, bucket, f"{PREFIX}/11/")
    repo.write(11, [langs[0], {"code": "en", "subtitles": "dub"}])
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert len(eleven.creates) == 1  # the cached dub's id fetched its transcript: unpaid
    assert len(transcript_requests(eleven)) == 1
    after = keys(s3, bucket, f"{PREFIX}/11/")
    changed = {k for k in after if k not in before or after[k]["ETag"] != before[k]["ETag"]}
    assert changed and all("/subtitles/en/" in k or k.endswith("/master.m3u8")
                           for k in changed), changed
    seen = len(eleven.requests)
    assert reconcile("--apply", repo.manifests).code == 0
    assert reconcile("--plan", repo.manifests).code == 0 and len(eleven.requests) == seen


def test_subtitles_dub_without_a_dub_to_take_it_from_is_a_manifest_error(repo):
    repo.write(11, [{**KO_EN[0], "subtitles": "dub"}, {**KO_EN[1], "subtitles": "dub"}])
    result = reconcile("validate", repo.manifests)
    assert result.code == 1
    assert ("languages[0].subtitles: 'dub' is the transcript of a dub, but no language of the "
            "section is dubbed: give a .vtt or .srt file") in result.stderr
    assert ("languages[1].subtitles: 'dub' is the transcript of a dub, but this language has "
            "audio (not dubbed)") in result.stderr


def test_the_source_language_gets_the_first_dubs_source_transcript(repo, bucket, eleven, s3):
    repo.write(11, [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}],
               subtitles="dub")
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert len(eleven.creates) == 1
    assert sorted(p.rsplit("/", 1)[-1] for p in transcript_requests(eleven)) == ["en", "source"]
    ko = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/subtitles/ko/s_000.vtt")
    assert "\nsource line 1\n" in ko["Body"].read().decode()
    master = parse_master(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")
                          ["Body"].read().decode())
    assert list(master.uris("SUBTITLES")) == ["ko", "en"]
    seen = len(eleven.requests)
    assert reconcile("--plan", repo.manifests).code == 0 and len(eleven.requests) == seen


def test_validate_refuses_a_cp949_or_oversized_subtitle_file_naming_it_and_the_fix(repo):
    media = repo.root / "media"
    (media / "ko.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\n안녕하세요\n".encode("cp949"))
    (media / "big.vtt").write_bytes(b"WEBVTT\n\n" + b"x" * (8 << 20))
    path = repo.write(11, [{**KO_EN[0], "subtitles": "../media/ko.srt"},
                           {**KO_EN[1], "subtitles": "../media/big.vtt"}])
    result = reconcile("validate", repo.manifests)
    assert result.code == 1
    assert (f"{path}:7: languages[0].subtitles: ../media/ko.srt:3: not UTF-8 text (byte 0xbe); "
            "it reads as CP949 (EUC-KR) Korean: convert it (iconv -f CP949 -t UTF-8 FILE > "
            "FILE.utf8)") in result.stderr
    assert (f"{path}:10: languages[1].subtitles: ../media/big.vtt: 8.4 MB; a subtitle file may "
            "be at most 8 MiB") in result.stderr


def test_supplied_subtitles_keep_their_text_settings_and_overlaps_end_to_end(repo, bucket, s3):
    media = repo.root / "media"
    (media / "ko.srt").write_bytes(
        "1\n00:00:00,500 --> 00:00:02,000\n{\\an8}if a < b && c > d then\n".encode("utf-16"))
    (media / "en.vtt").write_text(
        "WEBVTT\n\nSTYLE\n::cue { color: yellow }\n\n00:01.000 --> 00:03.000 align:start\n"
        "<v A>one\n\n00:02.000 --> 00:03.500\n<v B>two\n", encoding="utf-8")
    repo.write(11, [{**KO_EN[0], "subtitles": "../media/ko.srt"},
                    {**KO_EN[1], "subtitles": "../media/en.vtt"}])
    assert reconcile("validate", repo.manifests).code == 0
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert ("warning: en: ../media/en.vtt:3: STYLE block dropped (ffmpeg's WebVTT reader stops "
            "at one; hls.js ignores it)") in applied.stdout + applied.stderr

    def first(code: str) -> str:
        key = f"{PREFIX}/11/subtitles/{code}/s_000.vtt"
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    assert first("ko").endswith("\n00:00:00.500 --> 00:00:02.000 line:0\n"
                                "if a &lt; b &amp;&amp; c &gt; d then\n\n")
    assert first("en").endswith("\n00:00:01.000 --> 00:00:03.000 align:start\n<v A>one\n"
                                "\n00:00:02.000 --> 00:00:03.500\n<v B>two\n\n")
    assert reconcile("--plan", repo.manifests).code == 0


def test_a_dub_transcripts_overlapping_speakers_are_published(repo, bucket, eleven, s3):
    """Issue 20 item 6: a multi-speaker transcript overlaps; `subtitles: dub` publishes it."""
    repo.write(11, [{"code": "ko", "audio": "source", "default": True},
                    {"code": "en", "subtitles": "dub"}])
    assert reconcile("--apply", repo.manifests).code == 0
    [cached] = [k for k in keys(s3, bucket, "dubbing-cache/11/en/")
                if k.endswith("-transcript.vtt")]
    s3.put_object(Bucket=bucket, Key=cached, Body=(
        b"WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Speaker 1>we start\n\n"
        b"00:00:02.000 --> 00:00:04.000\n<v Speaker 2>at the same time\n"))
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [  # rebuilt from the cached transcript
        {"Key": k} for k in keys(s3, bucket, f"{PREFIX}/11/subtitles/en/")]})
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    first = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/subtitles/en/s_000.vtt")
    assert first["Body"].read().decode().endswith(
        "\n00:00:01.000 --> 00:00:03.000\n<v Speaker 1>we start\n"
        "\n00:00:02.000 --> 00:00:04.000\n<v Speaker 2>at the same time\n\n")
