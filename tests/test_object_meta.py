"""An object's metadata is one value, `layout.ObjectMeta`: its rules, and both stores keep it
as older versions did (S3's headers on the wire, the local store's sidecar files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reconciler import layout
from reconciler.layout import ObjectMeta
from reconciler.store.local import LocalStore
from reconciler.store.s3 import S3Store

STAMPS = {"reconciler-source": "abc123", "reconciler-settings": "video:1"}


def test_user_metadata_counts_for_equality_but_not_for_the_hash():
    stamped = layout.PLAYLIST_META.stamped(STAMPS)
    again = ObjectMeta(layout.PLAYLIST_META.content_type, layout.PLAYLIST_CACHE,
                       user_metadata=dict(STAMPS))
    assert stamped == again and {stamped: "found"}[again] == "found"
    assert stamped != layout.PLAYLIST_META and hash(stamped) == hash(layout.PLAYLIST_META)
    assert stamped.same_headers(layout.PLAYLIST_META)
    assert not stamped.same_headers(layout.SEGMENT_META.stamped(STAMPS))


def test_the_user_metadata_is_the_values_own_and_read_only():
    given = dict(STAMPS)
    meta = layout.SEGMENT_META.stamped(given)
    given["reconciler-source"] = "changed"
    assert meta.user_metadata == STAMPS
    with pytest.raises(TypeError):
        meta.user_metadata["reconciler-source"] = "changed"  # type: ignore[index]


def test_stamped_adds_and_replaces_user_metadata_and_keeps_the_headers():
    meta = layout.PLAYLIST_META.stamped(STAMPS).stamped({"reconciler-source": "def456",
                                                         "dubbing-id": "d1"})
    assert meta.user_metadata == {**STAMPS, "reconciler-source": "def456", "dubbing-id": "d1"}
    assert meta.headers() == layout.PLAYLIST_META.headers()
    assert layout.PLAYLIST_META.user_metadata == {}  # the table's entry is untouched


def test_a_viewer_gets_content_type_and_cache_control_but_not_sse():
    assert layout.SEGMENT_META.headers() == {"Content-Type": "video/iso.segment",
                                             "Cache-Control": layout.IMMUTABLE_CACHE,
                                             "SSE": "AES256"}
    assert layout.SEGMENT_META.headers(served=True) == {"Content-Type": "video/iso.segment",
                                                        "Cache-Control": layout.IMMUTABLE_CACHE}


# -- the stores -------------------------------------------------------------------------------


def test_s3_gets_the_headers_and_user_metadata_on_the_wire(bucket, s3, tmp_path: Path):
    store = S3Store(bucket)
    playlist, segment = "a/audio.m3u8", "a/a_000.m4s"
    meta = layout.PLAYLIST_META.stamped(STAMPS)
    store.put_bytes(playlist, b"#EXTM3U\n", meta)
    (tmp_path / "seg").write_bytes(b"\0" * 100)
    store.put_file(segment, tmp_path / "seg", layout.SEGMENT_META.stamped({"dubbing-id": "d1"}))

    def wire(key: str) -> tuple:
        head = s3.head_object(Bucket=bucket, Key=key)
        return (head["ContentType"], head["CacheControl"], head["ServerSideEncryption"],
                head["Metadata"])

    assert wire(playlist) == ("application/vnd.apple.mpegurl", layout.PLAYLIST_CACHE,
                              "AES256", STAMPS)
    assert wire(segment) == ("video/iso.segment", layout.IMMUTABLE_CACHE, "AES256",
                             {"dubbing-id": "d1"})
    assert store.head(playlist).meta == meta
    assert store.get(playlist)[1].meta == meta
    assert store.list("a/")[playlist].meta is None  # a LIST does not know the headers

    store.set_meta(playlist, layout.SEGMENT_META)  # replaces the user metadata too
    assert wire(playlist) == ("video/iso.segment", layout.IMMUTABLE_CACHE, "AES256", {})


def test_the_local_sidecar_keeps_the_format_older_versions_wrote(tmp_path: Path):
    """Objects a local store holds from before stay readable: the sidecar is the same JSON."""
    store = LocalStore(tmp_path)
    key = "assets/curriculumsection/11/audio/en/audio.m3u8"
    body = b"#EXTM3U\n"
    store.put_bytes(key, body, layout.PLAYLIST_META.stamped(STAMPS))
    sidecar = tmp_path / ".meta" / (key + ".json")
    as_older_versions_wrote = {
        "cache_control": layout.PLAYLIST_CACHE,
        "content_type": "application/vnd.apple.mpegurl",
        "etag": hashlib.md5(body, usedforsecurity=False).hexdigest(),
        "metadata": STAMPS,
        "size": len(body),
        "sse": "AES256",
    }
    assert sidecar.read_text() == json.dumps(as_older_versions_wrote, sort_keys=True)

    sidecar.write_text(json.dumps({**as_older_versions_wrote, "metadata": {"by": "hand"}}))
    assert store.head(key).meta == layout.PLAYLIST_META.stamped({"by": "hand"})
    sidecar.unlink()  # an object copied into the folder by hand: no headers
    assert store.head(key).meta == ObjectMeta("", "", "")
