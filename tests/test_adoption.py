"""Renditions the reconciler did not write (no stamp), as the customer's hand-run scripts left
them: adopted only once checked against the manifest's inputs from the media itself, stamped
when adopted, and rebuilt like any other when they do not match or the input changes later.
Against moto, with the spec's own ffmpeg commands and upload headers."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from cli_helpers import reconcile
from conftest import KO_EN

from reconciler import layout
from reconciler.adoption import check_audio, check_video
from reconciler.hls import MediaPlaylist, Segment, parse_media
from reconciler.mp4 import TrackInfo, frame_rate
from reconciler.observed import STAMP_ADOPTED, STAMP_SOURCE, Rendition, UnstampedVideo
from reconciler.packager import MediaInfo

SID = 11
HLS = ["-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
       "-hls_fmp4_init_filename", "init.mp4"]
SPEC_HEADERS = {".m3u8": ("application/vnd.apple.mpegurl", "public, max-age=60"),
                ".m4s": ("video/iso.segment", "public, max-age=31536000, immutable"),
                ".mp4": ("video/mp4", "public, max-age=31536000, immutable")}
SPEC_MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Korean",LANGUAGE="ko",AUTOSELECT=YES,DEFAULT=YES,URI="audio/ko/audio.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",AUTOSELECT=YES,DEFAULT=NO,URI="audio/en/audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS="avc1.4d401f",RESOLUTION=1920x1080,AUDIO="aud"
video/video.m3u8
"""


def ffmpeg(folder: Path, *args: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], cwd=folder,
                   check=True)


def old_scripts_bucket(s3, bucket: str, work: Path, video: Path, audio: dict[str, Path]) -> None:
    """Section 11 as the spec's scripts made it: its two ffmpeg commands (run in the rendition's
    folder, so segments land beside the playlist), the uploader's headers by extension, the
    template master; no reconciler stamp anywhere. `audio`: language -> its input (the
    video itself for the spoken language)."""
    ffmpeg(work / "video", "-i", str(video), "-map", "0:v:0", "-c:v", "copy", *HLS,
           "-hls_segment_filename", "v_%03d.m4s", "video.m3u8")
    for code, source in audio.items():
        ffmpeg(work / "audio" / code, "-i", str(source), "-map", "0:a:0", "-c:a", "aac",
               "-b:a", "128k", "-ar", "48000", "-ac", "2", *HLS,
               "-hls_segment_filename", "a_%03d.m4s", "audio.m3u8")
    (work / "master.m3u8").write_text(SPEC_MASTER)
    files = sorted(p for p in work.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: p.name == "master.m3u8"):  # master last
        ctype, cache = SPEC_HEADERS[path.suffix]
        s3.put_object(Bucket=bucket, Key=layout.section_prefix(SID) + str(path.relative_to(work)),
                      Body=path.read_bytes(), ContentType=ctype, CacheControl=cache,
                      ServerSideEncryption="AES256")


def media_objects(s3, bucket: str) -> dict[str, tuple[str, object]]:
    """Init and segments of the section: key -> (ETag, LastModified), to tell a re-encode."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=layout.section_prefix(SID))["Contents"]
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listed
            if o["Key"].endswith((".m4s", ".mp4"))}


# What KO_EN declares: the video, ko spoken in it, en from its own file.
AS_DECLARED = {"video": "lecture.mp4", "ko": "lecture.mp4", "en": "en.mp3"}


def old_scripts_section(
        repo, s3, bucket: str, media: Path, scratch: Path,
        made_from: Mapping[str, str] = AS_DECLARED) -> dict[str, tuple[str, object]]:
    """Section 11 declared by KO_EN and published by the old scripts from `made_from` (video,
    ko, en: files in `media`; their work folder in `scratch`). Returns its init and segments as
    published (media_objects), to tell a re-encode by."""
    old_scripts_bucket(s3, bucket, scratch / "old", media / made_from["video"],
                       {code: media / made_from[code] for code in ("ko", "en")})
    repo.write(SID, KO_EN)
    return media_objects(s3, bucket)


def playlist(s3, bucket: str, language: str | None) -> tuple[float, dict[str, str]]:
    """A rendition's duration (its EXTINFs) and its playlist's user metadata."""
    key = layout.rendition_dir(SID, language) + layout.playlist_name(language)
    got = s3.get_object(Bucket=bucket, Key=key)
    return parse_media(got["Body"].read().decode()).duration, got["Metadata"]


def actions(result) -> list[tuple[str, str | None]]:
    return [(a["type"], a["language"]) for s in result.json()["sections"] for a in s["actions"]]


def test_an_old_scripts_bucket_is_adopted_then_fully_rebuilt_when_the_video_changes(
        repo, bucket, s3, media, tmp_path):
    encoded = old_scripts_section(repo, s3, bucket, media, tmp_path)

    saved = tmp_path / "plan.json"  # the adoption goes through a saved plan, as in CI
    first = reconcile("--plan", repo.manifests, "--format", "json", "--out", saved)
    assert first.code == 2
    assert sorted(actions(first), key=str) == sorted(
        [("adopt", None), ("adopt", "ko"), ("adopt", "en"), ("write_master", None)], key=str)
    applied = reconcile("--apply", saved)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert media_objects(s3, bucket) == encoded  # nothing re-encoded nor uploaded again
    for language in (None, "ko", "en"):
        assert STAMP_SOURCE in playlist(s3, bucket, language)[1]
    master = s3.get_object(Bucket=bucket, Key=layout.master_key(SID))["Body"].read().decode()
    assert "RESOLUTION=320x180,FRAME-RATE=24.000" in master  # the video as measured
    assert reconcile("--plan", repo.manifests).code == 0
    assert reconcile("--plan", repo.manifests, "--deep").code == 0

    # 3 s instead of 5 s; the 5 s en.mp3 then needs the opt-in to be trimmed to it
    repo.write(SID, [KO_EN[0], {**KO_EN[1], "fit": "trim"}], video="../media/lecture-b.mp4")
    changed = reconcile("--plan", repo.manifests, "--format", "json")
    assert changed.code == 2
    assert {("package_video", None), ("package_audio", "ko"), ("package_audio", "en")} <= set(
        actions(changed))  # (was: No changes: the adopted video was trusted forever)
    assert reconcile("--apply", repo.manifests).code == 0
    for language in (None, "ko", "en"):
        seconds, stamp = playlist(s3, bucket, language)
        assert seconds == pytest.approx(3.0, abs=0.1), language  # audio re-aligned to it
        assert STAMP_ADOPTED not in stamp  # rebuilt, not adopted again
    assert not set(media_objects(s3, bucket).values()) & set(encoded.values())
    assert reconcile("--plan", repo.manifests, "--deep").code == 0


@pytest.mark.parametrize("made_from, rebuilt", [
    ({"video": "lecture-b.mp4", "ko": "lecture-b.mp4", "en": "en.mp3"},  # 3 s video, not 5 s
     {("package_video", None), ("package_audio", "ko"), ("package_audio", "en")}),
    ({"video": "lecture.mp4", "ko": "lecture.mp4", "en": "long.mp3"},  # en 8 s, video 5 s
     {("package_audio", "en")}),
])
def test_an_unstamped_rendition_that_does_not_match_is_rebuilt_not_adopted(
        repo, bucket, s3, media, tmp_path, made_from, rebuilt):
    old_scripts_section(repo, s3, bucket, media, tmp_path, made_from)
    plan = reconcile("--plan", repo.manifests, "--format", "json")
    packaged = {a for a in actions(plan) if a[0].startswith("package")}
    assert packaged == rebuilt
    adopted = {a[1] for a in actions(plan) if a[0] == "adopt"}
    assert adopted == {None, "ko", "en"} - {a[1] for a in rebuilt}
    assert reconcile("--apply", repo.manifests).code == 0
    for language in (None, "ko", "en"):
        assert playlist(s3, bucket, language)[0] == pytest.approx(5.0, abs=0.1)
    assert reconcile("--plan", repo.manifests).code == 0


def test_the_frame_rate_is_read_from_the_init_and_a_segment(media, tmp_path):
    """The rendition's own timing (no playlist or init states it): 24 fps as made, 30000/1001
    as NTSC is, and None without a video track."""
    ffmpeg(tmp_path / "ntsc", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=30000/1001",
           "-t", "3", "-c:v", "libx264", "-bf", "2", "ntsc.mp4")
    for source, fps in ((media / "lecture.mp4", 24.0), (tmp_path / "ntsc" / "ntsc.mp4", 29.97)):
        out = tmp_path / source.stem
        ffmpeg(out, "-i", str(source), "-map", "0:v:0", "-c:v", "copy", *HLS,
               "-hls_segment_filename", "v_%03d.m4s", "video.m3u8")
        init, first = (out / "init.mp4").read_bytes(), (out / "v_000.m4s").read_bytes()
        assert frame_rate(init, first) == fps
    audio = tmp_path / "audio"
    ffmpeg(audio, "-i", str(media / "en.mp3"), "-c:a", "aac", *HLS,
           "-hls_segment_filename", "a_%03d.m4s", "audio.m3u8")
    assert frame_rate((audio / "init.mp4").read_bytes(),
                      (audio / "a_000.m4s").read_bytes()) is None


def rendition(language: str | None, seconds: float, track: TrackInfo) -> Rendition:
    playlist = MediaPlaylist(4, (Segment("x_000.m4s", seconds),))
    return Rendition(language, playlist, None, track)


H264 = TrackInfo("video", "avc1.64000d", width=320, height=180)
DECLARED = MediaInfo(8.0, "h264", 320, 180, 24.0, 1)


@pytest.mark.parametrize("seconds, track, declared, rate, why", [
    (8.0, H264, DECLARED, 24.0, None),
    (8.9, H264, DECLARED, 24.0, None),  # within a second, as the packaging check allows
    (6.0, H264, DECLARED, 24.0, "it lasts 6.0s, the video 8.0s"),
    (8.0, TrackInfo("video", "hvc1.1.6.L93", width=320, height=180), DECLARED, 24.0,
     "it is hvc1.1.6.L93, the video h264"),
    (8.0, TrackInfo("video", "avc1.64000d", width=640, height=360), DECLARED, 24.0,
     "it is 640x360, the video 320x180"),
    (8.0, H264, DECLARED, 25.0, "it runs at 25.0 fps, the video at 24.0"),
    (8.0, H264, DECLARED, None, "it runs at ? fps, the video at 24.0"),
    (8.0, H264, None, 24.0, "the manifest's video cannot be probed"),
])
def test_an_unstamped_video_is_adopted_only_when_the_media_agree(seconds, track, declared,
                                                                   rate, why):
    check = check_video(rendition(None, seconds, track), UnstampedVideo(declared, rate))
    assert check.mismatch == why
    if why is None:
        assert check.frame_rate == "24" and check.against == "video 8.00s h264 320x180 24fps"


AAC = TrackInfo("audio", "mp4a.40.2", channels=2, sample_rate=48000)


@pytest.mark.parametrize("seconds, track, why", [
    (8.0, AAC, None),
    (7.2, AAC, None),
    (11.0, AAC, "it lasts 11.0s, the video 8.0s"),
    (8.0, TrackInfo("audio", "mp4a.40.2", channels=2, sample_rate=44100),
     "it is mp4a.40.2 44100Hz 2ch, not mp4a.40.2 48000Hz 2ch"),
    (8.0, TrackInfo("audio", "mp4a.40.5", channels=2, sample_rate=48000),
     "it is mp4a.40.5 48000Hz 2ch, not mp4a.40.2 48000Hz 2ch"),
    (8.0, TrackInfo("audio", "mp4a.40.2", channels=1, sample_rate=48000),
     "it is mp4a.40.2 48000Hz 1ch, not mp4a.40.2 48000Hz 2ch"),
])
def test_an_unstamped_audio_is_adopted_only_as_long_as_the_video_and_aac_lc(seconds, track,
                                                                           why):
    video = rendition(None, 8.0, H264)
    assert check_audio(rendition("en", seconds, track), video).mismatch == why
