"""Names users really have, end to end through the CLI: language tags in any case, paths with
spaces and Hangul, s3:// keys with `#`, `?` and `%` in them (issue 21 items 7 and 10)."""

from __future__ import annotations

import re
from pathlib import Path

from cli_helpers import reconcile

PREFIX = "assets/curriculumsection"


def published(store: Path, sid: int) -> list[str]:
    root = store / PREFIX / str(sid)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def master_languages(store: Path, sid: int) -> list[str]:
    master = (store / PREFIX / str(sid) / "master.m3u8").read_text()
    return re.findall(r'LANGUAGE="([^"]+)"', master)


def test_a_tags_case_is_canonical_so_recasing_it_changes_nothing(repo, tmp_path):
    store = tmp_path / "store"
    repo.write(11, [{"code": "KO", "audio": "source", "default": True},
                    {"code": "EN-us", "audio": "../media/en.mp3"}])
    applied = reconcile("--apply", repo.manifests, "--store", f"file://{store}")
    assert applied.code == 0, applied.stdout + applied.stderr
    folders = {key.rsplit("/", 1)[0] for key in published(store, 11) if "/" in key}
    assert folders == {"video", "audio/ko", "audio/en-US"}
    assert master_languages(store, 11) == ["ko", "en-US"]

    repo.write(11, [{"code": "Ko", "audio": "source", "default": True},
                    {"code": "en-US", "audio": "../media/en.mp3"}])
    plan = reconcile("--plan", repo.manifests, "--store", f"file://{store}")
    assert plan.code == 0, plan.stdout  # nothing re-packaged, no folder orphaned


def test_two_tags_equal_but_for_case_fail_validate_naming_both(repo):
    path = repo.write(11, [{"code": "ko", "audio": "source"},
                           {"code": "KO", "audio": "../media/en.mp3"}])
    result = reconcile("validate", repo.manifests)
    assert result.code == 1
    assert (f"{path}:6: languages[1].code: duplicate language 'KO' (also languages[0]: both "
            "are ko)") in result.stderr


def test_relative_paths_with_spaces_and_hangul_are_published(repo, tmp_path):
    folder = repo.root / "강의 영상"
    folder.mkdir()
    (folder / "1강 소개.mp4").write_bytes((repo.root / "media" / "lecture.mp4").read_bytes())
    (folder / "영어 더빙 #1.mp3").write_bytes((repo.root / "media" / "en.mp3").read_bytes())
    (folder / "한국어 자막.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\n안녕하세요\n")
    repo.write(11, [{"code": "ko", "audio": "source", "default": True,
                     "subtitles": "../강의 영상/한국어 자막.srt"},
                    {"code": "en", "audio": "../강의 영상/영어 더빙 #1.mp3"}],
               video="./../강의 영상/1강 소개.mp4")
    assert reconcile("validate", repo.manifests).code == 0
    store = tmp_path / "store"
    applied = reconcile("--apply", repo.manifests, "--store", f"file://{store}")
    assert applied.code == 0, applied.stdout + applied.stderr
    assert master_languages(store, 11) == ["ko", "en", "ko"]  # two audio, one subtitles
    assert "안녕하세요" in (store / PREFIX / "11" / "subtitles" / "ko" / "s_000.vtt").read_text()


def test_s3_keys_are_taken_verbatim_so_hash_question_mark_and_percent_name_that_object(
        repo, bucket, s3):
    media = repo.root / "media"
    real, decoy = "lectures/intro#2?take=3&v=1.mp4", "lectures/intro"  # what urlsplit keeps
    s3.put_object(Bucket=bucket, Key=real, Body=(media / "lecture.mp4").read_bytes())
    s3.put_object(Bucket=bucket, Key=decoy, Body=(media / "lecture-b.mp4").read_bytes())
    s3.put_object(Bucket=bucket, Key="dubs/en%20final#.mp3", Body=(media / "en.mp3").read_bytes())
    repo.write(11, [{"code": "ko", "audio": "source", "default": True},
                    {"code": "en", "audio": f"s3://{bucket}/dubs/en%20final#.mp3"}],
               video=f"s3://{bucket}/{real}")
    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    video = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/video/video.m3u8")["Body"].read()
    durations = [float(d) for d in re.findall(rb"#EXTINF:([0-9.]+),", video)]
    assert abs(sum(durations) - 5.0) < 0.1, durations  # the 5 s lecture, not the 3 s decoy
    master = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read().decode()
    assert re.findall(r'LANGUAGE="([^"]+)"', master) == ["ko", "en"]
    assert reconcile("--plan", repo.manifests).code == 0


def test_an_s3_version_id_or_a_spaced_https_url_is_refused_at_validate(repo):
    path = repo.write(11, [{"code": "ko", "audio": "source", "default": True},
                           {"code": "en", "audio": "https://cdn.example.com/en dub.mp3"},
                           {"code": "ja", "audio": "https://cdn.example.com/ja#2.mp3"}],
                      video="s3://uploads/lectures/11.mp4?versionId=3HL4kqtJlcpXroDTDmJ")
    result = reconcile("validate", repo.manifests)
    assert result.code == 1
    assert (f"{path}:2: video: S3 keys are taken verbatim, so '?versionId=' would be part of "
            "the key: a version cannot be chosen; copy that version to a key of its own"
            ) in result.stderr
    assert (f"{path}:8: languages[1].audio: a URL cannot contain whitespace: percent-encode it "
            "(%20)") in result.stderr
    assert (f"{path}:10: languages[2].audio: '#' ends a URL (what follows is never sent, so "
            "another file would be fetched): percent-encode it (%23)") in result.stderr
