"""Videos every player would show wrong are refused before anything of their section is
written: stored rotated (a phone's portrait recording) or an H.264 profile iOS/Safari and
Firefox cannot decode. End to end through `reconcile --apply` on the local store, on the
corpus's shapes (tests/corpus.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cli_helpers import reconcile

from reconciler.packager import MediaError
from reconciler.packager.ffmpeg import fix_command, probe, refuse_unplayable

PREFIX = "assets/curriculumsection"


def published(store: str, sid: int) -> list[str]:
    root = Path(store[len("file://"):]) / PREFIX / str(sid)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


@pytest.fixture
def store(tmp_path) -> str:
    return f"file://{tmp_path / 'store'}"


@pytest.mark.parametrize("shape, what", [
    ("rotated", "is rotated 90 degrees by its display matrix"),
    ("high10", "H.264 profile High 10 with pixel format yuv420p10le"),
    ("high422", "H.264 profile High 4:2:2 with pixel format yuv422p"),
    ("high444", "H.264 profile High 4:4:4 Predictive with pixel format yuv444p"),
])
def test_a_video_players_would_show_wrong_is_refused_and_nothing_published(
        repo, corpus, store, shape, what):
    corpus.copy_to(shape, repo.root / "media", "upload.mp4")
    repo.write(11, [{"code": "ko", "audio": "source"}], video="../media/upload.mp4")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1, res.stdout
    line = next((x for x in res.stdout.splitlines() if what in x), None)
    assert line is not None, res.stdout
    assert "package video" in line and "upload.mp4:" in line
    fix = "ffmpeg -i upload.mp4 -c:v libx264 -pix_fmt yuv420p -profile:v high -c:a copy " \
          "upload-h264.mp4"
    assert line.endswith(fix), line
    assert published(store, 11) == []  # not the video, not the audio, not master


def test_the_offered_command_makes_a_rotated_upload_publish_upright(repo, corpus, store):
    """Run the command the refusal offers on the phone recording: the result is accepted and
    master reports the resolution players show (portrait), not the stored 320x180."""
    media = repo.root / "media"
    corpus.copy_to("rotated", media, "upload.mp4")
    repo.write(11, [{"code": "ko", "audio": "source"}], video="../media/upload.mp4")
    refused = reconcile("--apply", repo.manifests, "--store", store)
    assert refused.code == 1
    command = shlex.split(refused.stdout.split("Re-encode it upright: ", 1)[1].splitlines()[0])
    subprocess.run([*command[:1], "-v", "error", "-y", *command[1:]], cwd=media, check=True)
    repo.write(11, [{"code": "ko", "audio": "source"}], video="../media/upload-h264.mp4")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 0, res.stdout
    master = (Path(store[len("file://"):]) / PREFIX / "11" / "master.m3u8").read_text()
    assert re.search(r"RESOLUTION=180x320\b", master), master


@pytest.mark.parametrize("shape", ["high10", "high422", "high444"])
def test_the_offered_command_makes_every_refused_profile_playable(corpus, tmp_path, shape):
    source = corpus.copy_to(shape, tmp_path)
    with pytest.raises(MediaError):
        refuse_unplayable(probe(source), source.name)
    command = fix_command(source.name)
    subprocess.run([*command[:1], "-v", "error", "-y", *command[1:]], cwd=tmp_path, check=True)
    fixed = probe(tmp_path / command[-1])
    refuse_unplayable(fixed, command[-1])
    assert (fixed.profile, fixed.pixel_format) == ("High", "yuv420p")


@pytest.mark.parametrize("shape", ["lecture", "bframes", "baseline", "vfr", "long_gop",
                                   "surround"])
def test_ordinary_uploads_are_not_refused(corpus, shape):
    """8-bit 4:2:0 Constrained Baseline and High, B-frames, VFR, a long GOP, 5.1 audio."""
    info = probe(corpus.path(shape))
    refuse_unplayable(info, shape)
    assert info.rotation == 0 and not info.mirrored


def test_a_constrained_baseline_upload_publishes(repo, corpus, store):
    corpus.copy_to("baseline", repo.root / "media", "upload.mp4")
    repo.write(11, [{"code": "ko", "audio": "source"}], video="../media/upload.mp4")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 0, res.stdout
    assert "master.m3u8" in published(store, 11)


def test_a_mirrored_display_matrix_is_read_as_mirrored_and_refused(corpus):
    """ffmpeg 5.1 cannot write one (`rotate` tags only rotate): ffprobe's dump of a horizontal
    flip, in the form it prints any display matrix, and the refusal of a video so flipped."""
    from reconciler.packager.ffmpeg import _orientation

    flipped = {"side_data_list": [{
        "displaymatrix": "\n00000000:       -65536           0           0\n"
                         "00000001:            0       65536           0\n"
                         "00000002:            0           0  1073741824\n",
        "rotation": 0}]}
    assert _orientation(flipped) == (0, True)
    assert _orientation({}) == (0, False)
    flipped_upload = replace(probe(corpus.path("upright")), mirrored=True)
    with pytest.raises(MediaError, match="upload.mp4: the video is mirrored by its display"):
        refuse_unplayable(flipped_upload, "upload.mp4")


def test_a_refused_video_pays_for_no_dub_and_publishes_nothing_on_s3(repo, corpus, s3, bucket,
                                                                     eleven):
    corpus.copy_to("high10", repo.root / "media", "upload.mp4")
    repo.write(11, [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}],
               video="../media/upload.mp4")
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "upload.mp4: H.264 profile High 10" in res.stdout
    assert eleven.creates == []
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/11/")
    assert listed.get("KeyCount") == 0
