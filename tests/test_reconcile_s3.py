"""The core loop against moto in server mode: plan -> apply -> plan, metadata, master, the one
invalidation, minimal changes, in-place metadata repair, failure isolation."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from cli_helpers import reconcile
from conftest import KO_EN

from reconciler import layout
from reconciler.store.s3 import s3_client

PREFIX = "assets/curriculumsection"


def keys(s3, bucket: str, prefix: str = PREFIX) -> dict[str, dict]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = item
    return out


def invalidations(dist: str) -> list[list[str]]:
    """Paths of each invalidation, oldest first."""
    cf = boto3.client("cloudfront", region_name="us-east-1")
    items = cf.list_invalidations(DistributionId=dist)["InvalidationList"].get("Items", [])
    items.sort(key=lambda i: i["CreateTime"])
    return [
        cf.get_invalidation(DistributionId=dist, Id=i["Id"])["Invalidation"][
            "InvalidationBatch"]["Paths"]["Items"]
        for i in items
    ]


@pytest.fixture
def two_sections(repo):
    repo.write(11, KO_EN + [{"code": "ja", "name": "Japanese", "audio": "../media/ja.m4a"}])
    repo.write(12, [{"code": "en", "audio": "../media/en.mp3", "fit": "trim"},  # 5 s for 3 s
                    {"code": "ko", "audio": "source", "default": True}],
               video="../media/lecture-b.mp4")
    return repo


def test_plan_apply_plan_converges_with_exact_layout_metadata_and_one_invalidation(
    two_sections, bucket, distribution, s3
):
    first = reconcile("--plan", two_sections.manifests)
    assert first.code == 2, first.stderr
    assert "+ package video" in first.stdout and "+ package audio ja" in first.stdout
    assert re.search(r"^Plan: \d+ to create, 0 to update, 0 to delete\.$", first.stdout, re.M)

    applied = reconcile("--apply", two_sections.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr

    assert reconcile("--plan", two_sections.manifests).code == 0
    again = reconcile("--plan", two_sections.manifests, "--format", "json")
    assert again.code == 0 and again.json()["summary"]["changes"] is False

    objects = keys(s3, bucket)
    for sid, langs in ((11, ["ko", "en", "ja"]), (12, ["en", "ko"])):
        base = f"{PREFIX}/{sid}/"
        assert base + "master.m3u8" in objects
        for d in ["video/"] + [f"audio/{c}/" for c in langs]:
            playlist = base + d + ("video.m3u8" if d == "video/" else "audio.m3u8")
            assert base + d + "init.mp4" in objects and playlist in objects
            seg = "v_000.m4s" if d == "video/" else "a_000.m4s"
            assert base + d + seg in objects
    # Nothing strays outside the layout (the 403 bug put segments at the wrong level).
    pattern = re.compile(
        rf"^{PREFIX}/\d+/(master\.m3u8|video/(video\.m3u8|init\.mp4|v_\d{{3}}\.m4s)|"
        r"audio/[A-Za-z0-9-]+/(audio\.m3u8|init\.mp4|a_\d{3}\.m4s))$"
    )
    assert all(pattern.match(k) for k in objects), [k for k in objects if not pattern.match(k)]
    for key in objects:
        head = s3.head_object(Bucket=bucket, Key=key)
        want = layout.meta_for(key)
        assert (head["ContentType"], head["CacheControl"], head["ServerSideEncryption"]) == (
            want.content_type, want.cache_control, "AES256"), key

    # Exactly one invalidation for the whole apply, listing both masters; none afterwards.
    assert invalidations(distribution) == [[
        "/assets/curriculumsection/11/master.m3u8", "/assets/curriculumsection/12/master.m3u8"
    ]] or sorted(invalidations(distribution)[0]) == [
        "/assets/curriculumsection/11/master.m3u8", "/assets/curriculumsection/12/master.m3u8"
    ]
    second = reconcile("--apply", two_sections.manifests)
    assert second.code == 0
    assert len(invalidations(distribution)) == 1
    assert keys(s3, bucket) == objects  # no write at all: same ETags and LastModified


def test_master_playlist_follows_the_spec(two_sections, bucket, s3):
    assert reconcile("--apply", two_sections.manifests).code == 0
    master = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read().decode()
    lines = master.splitlines()
    assert lines[0] == "#EXTM3U"
    assert int(re.search(r"#EXT-X-VERSION:(\d+)", master).group(1)) >= 6
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in lines
    media = [ln for ln in lines if ln.startswith("#EXT-X-MEDIA:")]
    assert [re.search(r'LANGUAGE="([^"]+)"', m).group(1) for m in media] == ["ko", "en", "ja"]
    assert [re.search(r'NAME="([^"]+)"', m).group(1) for m in media] == [
        "Korean", "English", "Japanese"]
    assert sum("DEFAULT=YES" in m for m in media) == 1 and "DEFAULT=YES" in media[0]
    for code, m in zip(["ko", "en", "ja"], media, strict=True):
        assert 'TYPE=AUDIO,GROUP-ID="aud"' in m and "AUTOSELECT=YES" in m
        assert 'CHANNELS="2"' in m and f'URI="audio/{code}/audio.m3u8"' in m
    inf_index = next(i for i, ln in enumerate(lines) if ln.startswith("#EXT-X-STREAM-INF:"))
    inf = lines[inf_index]
    assert lines[inf_index + 1] == "video/video.m3u8"
    assert re.search(r'CODECS="avc1\.64[0-9a-f]{4},mp4a\.40\.2"', inf), inf
    assert "RESOLUTION=320x180" in inf and "FRAME-RATE=24.000" in inf and 'AUDIO="aud"' in inf
    peak = int(re.search(r"BANDWIDTH=(\d+)", inf).group(1))
    avg = int(re.search(r"AVERAGE-BANDWIDTH=(\d+)", inf).group(1))
    assert peak >= avg > 0

    # Every media playlist: EXT-X-MAP to init.mp4, bare segment names, one shared target.
    targets = set()
    for d in ["video/video.m3u8", "audio/ko/audio.m3u8", "audio/en/audio.m3u8",
              "audio/ja/audio.m3u8"]:
        text = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/{d}")["Body"].read().decode()
        assert '#EXT-X-MAP:URI="init.mp4"' in text
        segs = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        assert segs and all("/" not in s for s in segs)
        targets.add(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))
        durations = [float(x) for x in re.findall(r"#EXTINF:([\d.]+)", text)]
        assert abs(sum(durations) - 5.0) < 0.1, (d, sum(durations))  # aligned to the video
    assert len(targets) == 1


def test_adding_a_language_writes_only_that_language_and_master_and_reads_no_video(
    repo, bucket, distribution, s3, tmp_path
):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    before = keys(s3, bucket)
    # The video is gone from the repository: adding a supplied dub must not need it.
    (repo.root / "media" / "lecture.mp4").unlink()
    repo.write(11, KO_EN + [{"code": "zh-Hans", "audio": "../media/zh.mp3"}])
    plan = reconcile("--plan", repo.manifests, "--format", "json")
    assert plan.code == 2, plan.stdout + plan.stderr
    actions = [(a["type"], a["language"]) for a in plan.json()["sections"][0]["actions"]]
    assert actions == [("package_audio", "zh-Hans"), ("write_master", None)]

    applied = reconcile("--apply", repo.manifests)
    assert applied.code == 0, applied.stdout + applied.stderr
    after = keys(s3, bucket)
    changed = {k for k in after if k not in before or after[k]["ETag"] != before[k]["ETag"]
               or after[k]["LastModified"] != before[k]["LastModified"]}
    assert changed, "nothing was written"
    assert all(k.startswith(f"{PREFIX}/11/audio/zh-Hans/") or k == f"{PREFIX}/11/master.m3u8"
               for k in changed), changed
    assert set(before) <= set(after)
    master = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read()
    assert b'NAME="Chinese (Simplified)",LANGUAGE="zh-Hans"' in master
    assert invalidations(distribution)[-1] == ["/assets/curriculumsection/11/master.m3u8"]
    assert len(invalidations(distribution)) == 2  # one per apply that changed something


def test_damaged_metadata_is_repaired_in_place(repo, bucket, s3):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    damaged = [f"{PREFIX}/11/video/init.mp4", f"{PREFIX}/11/audio/en/a_001.m4s"]
    etags = {}
    for key in damaged:
        etags[key] = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                       MetadataDirective="REPLACE", ContentType="application/octet-stream",
                       CacheControl="no-cache")
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 2
    assert "~ fix metadata video/init.mp4" in plan.stdout
    assert "~ fix metadata audio/en/a_001.m4s" in plan.stdout
    assert "Content-Type: application/octet-stream -> video/mp4" in plan.stdout
    assert "package" not in plan.stdout and "master" not in plan.stdout

    assert reconcile("--apply", repo.manifests).code == 0
    for key in damaged:
        head = s3.head_object(Bucket=bucket, Key=key)
        want = layout.meta_for(key)
        assert (head["ContentType"], head["CacheControl"]) == (want.content_type,
                                                              want.cache_control)
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ETag"] == etags[key]  # same bytes: fixed by CopyObject, not re-uploaded
    assert reconcile("--plan", repo.manifests).code == 0


def test_deleted_init_makes_the_rendition_incomplete_and_apply_rebuilds_it(repo, bucket, s3):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    s3.delete_object(Bucket=bucket, Key=f"{PREFIX}/11/audio/en/init.mp4")
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 2 and "-/+ package audio en" in plan.stdout
    assert "init.mp4 missing" in plan.stdout
    assert reconcile("--apply", repo.manifests).code == 0
    assert reconcile("--plan", repo.manifests).code == 0


def test_invalid_manifest_exits_1_naming_file_and_field_and_touches_no_store(repo, s3):
    path = repo.write(11, [{"code": "ko", "audio": "source"}, {"code": "en_US"}])
    res = reconcile("--plan", repo.manifests, "--store", "s3://no-such-bucket-anywhere")
    assert res.code == 1
    assert f"{path}:" in res.stderr and "languages[1].code" in res.stderr
    assert "not a valid BCP 47 language tag" in res.stderr
    assert "nothing was read or written" in res.stderr
    assert res.stdout == ""


def test_a_failing_section_does_not_stop_the_others(repo, bucket, s3):
    repo.write(11, KO_EN)
    repo.write(13, KO_EN, video="../media/truncated.mp4")
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert "section 13: FAILED" in res.stdout and "package video" in res.stdout
    assert "| " in res.stdout  # the tail of ffmpeg's stderr
    objects = keys(s3, bucket)
    assert f"{PREFIX}/11/master.m3u8" in objects
    assert not any(k.startswith(f"{PREFIX}/13/") for k in objects)  # nothing half-published


def test_json_plan_is_stable_and_documented_shape(repo, bucket):
    repo.write(11, KO_EN)
    res = reconcile("--plan", repo.manifests, "--format", "json")
    assert res.code == 2 and res.stderr == ""
    doc = res.json()
    assert doc["formatVersion"] == 2
    assert doc["invalidationPaths"] == ["/assets/curriculumsection/11/master.m3u8"]
    (section,) = doc["sections"]
    assert section["sectionId"] == 11
    assert [(a["type"], a["language"]) for a in section["actions"]] == [
        ("package_video", None), ("package_audio", "ko"), ("package_audio", "en"),
        ("write_master", None)]


def test_multipart_upload_keeps_metadata(bucket, s3, tmp_path, monkeypatch):
    from reconciler.store.s3 import S3Store

    monkeypatch.setenv("RECONCILER_MULTIPART_THRESHOLD", str(5 * 1024 * 1024))
    big = tmp_path / "v_000.m4s"
    big.write_bytes(bytes(range(256)) * (11 * 4096))  # 11 MiB -> 3 parts
    key = f"{PREFIX}/99/video/v_000.m4s"
    S3Store(bucket).put_file(key, big, layout.meta_for(key))
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "video/iso.segment" and head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == big.stat().st_size


def test_replaced_language_is_rebuilt_and_its_path_invalidated(repo, bucket, distribution, s3,
                                                              media):
    repo.write(11, KO_EN)
    assert reconcile("--apply", repo.manifests).code == 0
    video_before = s3.head_object(Bucket=bucket, Key=f"{PREFIX}/11/video/video.m3u8")
    en_before = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/audio/en/a_000.m4s")["Body"].read()
    # A better dub arrives under the same file name.
    (repo.root / "media" / "en.mp3").write_bytes((media / "zh.mp3").read_bytes())
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 2 and "-/+ package audio en  (input changed)" in plan.stdout
    assert reconcile("--apply", repo.manifests).code == 0
    en_after = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/audio/en/a_000.m4s")["Body"].read()
    assert en_after != en_before
    video_after = s3.head_object(Bucket=bucket, Key=f"{PREFIX}/11/video/video.m3u8")
    assert video_after["LastModified"] == video_before["LastModified"]  # untouched
    last = invalidations(distribution)[-1]
    assert "/assets/curriculumsection/11/audio/en/*" in last  # reused segment names: purge them
    # master is listed only if its text changed (bit rates may or may not move).
    assert set(last) <= {"/assets/curriculumsection/11/audio/en/*",
                         "/assets/curriculumsection/11/master.m3u8"}
    assert reconcile("--plan", repo.manifests).code == 0


def test_removed_language_leaves_master_and_is_deleted_only_with_prune(repo, bucket, s3):
    repo.write(11, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])
    assert reconcile("--apply", repo.manifests).code == 0
    repo.write(11, KO_EN)
    plan = reconcile("--plan", repo.manifests)
    assert plan.code == 2 and "use --prune to delete" in plan.stdout
    assert "- delete" not in plan.stdout
    assert reconcile("--apply", repo.manifests).code == 0
    master = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/11/master.m3u8")["Body"].read()
    assert b'LANGUAGE="ja"' not in master
    assert keys(s3, bucket, f"{PREFIX}/11/audio/ja/")  # kept
    pruned = reconcile("--plan", repo.manifests, "--prune")
    assert pruned.code == 2 and "- delete objects audio/ja/ (" in pruned.stdout
    assert reconcile("--apply", repo.manifests, "--prune").code == 0
    assert keys(s3, bucket, f"{PREFIX}/11/audio/ja/") == {}
    assert reconcile("--plan", repo.manifests, "--prune").code == 0


def test_s3_region_comes_from_boto3s_chain_not_a_forced_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile's region is used (the old code forced us-east-1); AWS_REGION still wins."""
    config = tmp_path / "aws-config"
    config.write_text("[profile seoul]\nregion = ap-northeast-2\n")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "seoul")
    try:
        s3_client.cache_clear()
        assert s3_client().meta.region_name == "ap-northeast-2"
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        s3_client.cache_clear()
        assert s3_client().meta.region_name == "eu-west-1"
    finally:
        s3_client.cache_clear()
