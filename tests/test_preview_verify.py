"""The preview serves a store as CloudFront would; verify checks a CDN as a player sees it.

Everything goes through real HTTP on 127.0.0.1 against real ffmpeg-made CMAF sections.
"""

from __future__ import annotations

import http.client
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from media_helpers import make_section, running

from reconciler import hls, layout, preview
from reconciler.layout import IMMUTABLE_CACHE, PLAYLIST_CACHE, ObjectMeta
from reconciler.preview import PreviewHandler, make_server
from reconciler.store.local import LocalStore
from reconciler.store.s3 import S3Store
from reconciler.verify import render_text, to_json, verify

ORIGIN = "http://localhost:3000"
SECTION = 101
LANGS = {"ko": 440, "en": 880}
PREFIX = layout.section_prefix(SECTION)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "bucket")
    make_section(store, SECTION, LANGS)
    return store


@pytest.fixture
def cdn(store: LocalStore):
    with running(make_server(store)) as base:
        yield base


def raw_request(base: str, method: str, path: str, headers: dict | None = None):
    """Send the path byte for byte (httpx would normalize dot segments away)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# -- preview ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["video/video.m3u8", "video/init.mp4", "audio/ko/init.mp4"])
def test_customer_curl_checks(cdn: str, store: LocalStore, key: str) -> None:
    # curl -I -H 'Origin: http://localhost:3000' $CDN/assets/curriculumsection/101/<key>
    full = PREFIX + key
    response = httpx.head(f"{cdn}/{full}", headers={"Origin": ORIGIN})
    meta = layout.meta_for(full)
    assert response.status_code == 200
    assert response.headers["content-type"] == meta.content_type
    assert response.headers["cache-control"] == meta.cache_control
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in response.headers["vary"]
    assert "Content-Range" in response.headers["access-control-expose-headers"]
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == (store.root / full).stat().st_size
    assert response.headers["etag"] == f'"{store.head(full).etag}"'
    assert response.content == b""


def test_get_serves_the_stored_bytes(cdn: str, store: LocalStore) -> None:
    key = PREFIX + "video/v_000.m4s"
    response = httpx.get(f"{cdn}/{key}", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.content == (store.root / key).read_bytes()
    assert response.headers["content-type"] == "video/iso.segment"


def test_no_cors_headers_without_origin(cdn: str) -> None:
    response = httpx.head(f"{cdn}/{PREFIX}master.m3u8")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_range_requests(cdn: str, store: LocalStore) -> None:
    key = PREFIX + "audio/en/a_000.m4s"
    body = (store.root / key).read_bytes()
    size = len(body)
    url = f"{cdn}/{key}"
    cases = {
        "bytes=10-19": (10, 19),
        "bytes=0-0": (0, 0),
        f"bytes={size - 3}-": (size - 3, size - 1),
        "bytes=-5": (size - 5, size - 1),
        f"bytes=100-{size * 2}": (100, size - 1),
    }
    for header, (first, last) in cases.items():
        response = httpx.get(url, headers={"Range": header, "Origin": ORIGIN})
        assert response.status_code == 206, header
        assert response.content == body[first : last + 1], header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert int(response.headers["content-length"]) == last - first + 1, header
        assert response.headers["access-control-allow-origin"] == ORIGIN

    response = httpx.get(url, headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


def test_missing_key_is_404(cdn: str) -> None:
    for method in ("GET", "HEAD"):
        response = httpx.request(method, f"{cdn}/{PREFIX}audio/fr/init.mp4")
        assert response.status_code == 404, method


def test_a_store_error_is_502_in_one_line_not_404(cdn: str, store: LocalStore,
                                                 tmp_path: Path) -> None:
    """Issue 12: a key the store refuses to read (here a symlink leaving the local store) is the
    store failing, not a missing object: 502 with one line naming the key, no traceback."""
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"not for the player")
    link = store.root / PREFIX / "audio" / "ko" / "evil.mp4"
    link.symlink_to(outside)
    for method in ("GET", "HEAD"):
        response = httpx.request(method, f"{cdn}/{PREFIX}audio/ko/evil.mp4")
        assert response.status_code == 502, method
        if method == "GET":
            assert response.text.startswith(f"store error reading {PREFIX}audio/ko/evil.mp4: ")
            assert response.text.count("\n") == 1 and "Traceback" not in response.text
            assert b"not for the player" not in response.content


def test_the_index_answers_502_when_the_store_cannot_be_listed(moto_server) -> None:
    """The index page lists the store; a store that cannot be read (a bucket that does not
    exist, on a real S3 API) is 502 in one line like every other page, not a crash."""
    with running(make_server(S3Store(f"no-such-bucket-{uuid.uuid4().hex[:8]}"))) as base:
        response = httpx.get(f"{base}/")
    assert response.status_code == 502
    assert response.text.startswith("store error reading the section list: ")
    assert response.text.count("\n") == 1 and "Traceback" not in response.text


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/assets/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/assets/%2E%2E/%2e%2e/secret.txt",
    "/%252e%252e/secret.txt",
    "/assets/..%2fsecret.txt",
    "/.meta/assets/curriculumsection/101/master.m3u8.json",
    "/assets//curriculumsection/101/master.m3u8",
])
def test_path_traversal_is_refused(cdn: str, store: LocalStore, path: str) -> None:
    (store.root.parent / "secret.txt").write_text("top secret")
    status, _headers, body = raw_request(cdn, "GET", path)
    assert status in (400, 404)
    assert b"top secret" not in body and b"content_type" not in body


def test_options_preflight(cdn: str) -> None:
    response = httpx.options(f"{cdn}/{PREFIX}video/init.mp4", headers={
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    })
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "range" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(cdn: str, store: LocalStore, method: str) -> None:
    key = PREFIX + "master.m3u8"
    response = httpx.request(method, f"{cdn}/{key}", content=b"x")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    assert store.head(key) is not None


def test_headers_come_from_stored_metadata(cdn: str, store: LocalStore) -> None:
    key = PREFIX + "video/v_001.m4s"
    store.set_meta(key, ObjectMeta("application/octet-stream", PLAYLIST_CACHE))
    response = httpx.head(f"{cdn}/{key}")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["cache-control"] == PLAYLIST_CACHE


def test_player_page_and_hlsjs_are_served(cdn: str) -> None:
    page = httpx.get(f"{cdn}/player.html?section={SECTION}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'crossorigin="anonymous"' in page.text
    assert '<script src="hls.min.js">' in page.text

    script = httpx.get(f"{cdn}/hls.min.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.content == preview.HLSJS_FILE.read_bytes()
    assert b"audioTrack" in script.content


def test_index_lists_sections(cdn: str, store: LocalStore) -> None:
    make_section(store, 102, {"ja": 1320})
    page = httpx.get(f"{cdn}/")
    assert page.status_code == 200
    assert 'href="player.html?section=101"' in page.text
    assert 'href="player.html?section=102"' in page.text


# -- verify ----------------------------------------------------------------------------------
def test_verify_passes_for_a_good_section(cdn: str, store: LocalStore) -> None:
    report = verify(cdn, [SECTION], origin=ORIGIN, expected_languages={SECTION: ["ko", "en"]})
    assert report.ok, render_text(report)
    (section,) = report.sections
    assert section.objects_checked == len(store.list(PREFIX))  # every object, once
    assert section.languages == ["ko", "en"]
    doc = to_json(report)
    assert doc["ok"] is True
    assert doc["sections"][0]["objectsChecked"] == section.objects_checked
    assert doc["sections"][0]["failures"] == []
    assert render_text(report).splitlines()[-1].startswith("ok:")


def test_verify_names_the_missing_init(cdn: str, store: LocalStore) -> None:
    make_section(store, 102, LANGS)
    missing = layout.audio_dir(SECTION, "en") + layout.INIT
    store.delete([missing])

    report = verify(cdn, [SECTION, 102], origin=ORIGIN)
    assert not report.ok
    bad, good = report.sections
    assert good.ok and not bad.ok
    assert [(f.url, f.check, f.expected, f.actual) for f in bad.failures] == [
        (f"{cdn}/{missing}", "status", "200", "404"),
    ]
    text = render_text(report)
    assert f"{cdn}/{missing}" in text and "FAILED" in text
    assert to_json(report)["sections"][0]["failures"][0]["url"] == f"{cdn}/{missing}"


def test_verify_catches_wrong_metadata_on_one_segment(cdn: str, store: LocalStore) -> None:
    wrong_type = PREFIX + "audio/ko/a_001.m4s"
    wrong_cache = PREFIX + "video/v_000.m4s"
    store.set_meta(wrong_type, ObjectMeta("application/octet-stream", IMMUTABLE_CACHE))
    store.set_meta(wrong_cache, ObjectMeta("video/iso.segment", PLAYLIST_CACHE))

    report = verify(cdn, [SECTION], origin=ORIGIN)
    found = {(f.url, f.check, f.expected, f.actual) for f in report.failures}
    assert found == {
        (f"{cdn}/{wrong_type}", "content-type", "video/iso.segment", "application/octet-stream"),
        (f"{cdn}/{wrong_cache}", "cache-control", IMMUTABLE_CACHE, PLAYLIST_CACHE),
    }


def test_verify_reports_a_missing_expected_language(cdn: str) -> None:
    report = verify(cdn, [SECTION], origin=ORIGIN,
                    expected_languages={SECTION: ["ko", "en", "ja"]})
    (failure,) = report.failures
    assert failure.check == "language"
    assert failure.url == f"{cdn}/{layout.master_key(SECTION)}"
    assert "ja" in failure.expected and "en, ko" in failure.actual


def test_verify_reports_a_wrong_cors_origin(store: LocalStore) -> None:
    class OtherOrigin(PreviewHandler):
        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", "https://app.lingoost.com")

    with running(make_server(store, handler=OtherOrigin)) as base:
        report = verify(base, [SECTION], origin=ORIGIN)
    assert {f.check for f in report.failures} == {"cors"}
    assert len(report.failures) == report.sections[0].objects_checked


def test_verify_falls_back_to_ranged_get_when_head_is_rejected(store: LocalStore) -> None:
    seen: list[tuple[str, str, str | None]] = []

    class NoHead(PreviewHandler):
        def do_HEAD(self) -> None:
            seen.append(("HEAD", self.path, None))
            self._method_not_allowed()

        def do_GET(self) -> None:
            seen.append(("GET", self.path, self.headers.get("Range")))
            super().do_GET()

    with running(make_server(store, handler=NoHead)) as base:
        report = verify(base, [SECTION], origin=ORIGIN)
    assert report.ok, render_text(report)
    objects = [k for k in store.list(PREFIX) if not k.endswith(".m3u8")]
    ranged = sorted(path.lstrip("/") for method, path, rng in seen
                    if method == "GET" and rng == "bytes=0-0")
    assert ranged == sorted(objects)
    assert report.sections[0].objects_checked == len(store.list(PREFIX))


def _edit(store: LocalStore, key: str, old: str, new: str) -> None:
    text = store.get(key)[0].decode()
    assert old in text, (key, old)
    store.put_bytes(key, text.replace(old, new).encode(), layout.meta_for(key))


def _truncate_audio(store: LocalStore) -> None:
    """Keep only the last (shortest) segment of the English audio playlist."""
    key = layout.audio_dir(SECTION, "en") + layout.AUDIO_PLAYLIST
    playlist = hls.parse_media(store.get(key)[0].decode())
    short = hls.MediaPlaylist(playlist.target_duration, playlist.segments[-1:])
    store.put_bytes(key, hls.render_media(short).encode(), layout.meta_for(key))


MASTER = layout.master_key(SECTION)
EN_PLAYLIST = layout.audio_dir(SECTION, "en") + layout.AUDIO_PLAYLIST


@pytest.mark.parametrize(("check", "mutate"), [
    ("default-audio", lambda s: _edit(s, MASTER, 'LANGUAGE="en",AUTOSELECT=YES,DEFAULT=NO',
                                      'LANGUAGE="en",AUTOSELECT=YES,DEFAULT=YES')),
    ("codecs", lambda s: _edit(s, MASTER, ",mp4a.40.2", "")),
    ("target-duration", lambda s: _edit(s, EN_PLAYLIST, "#EXT-X-TARGETDURATION:4",
                                        "#EXT-X-TARGETDURATION:6")),
    ("ext-x-map", lambda s: _edit(s, EN_PLAYLIST, '#EXT-X-MAP:URI="init.mp4"\n', "")),
    ("audio-duration", _truncate_audio),
])
def test_verify_hls_rules(cdn: str, store: LocalStore, check: str, mutate) -> None:
    mutate(store)
    report = verify(cdn, [SECTION], origin=ORIGIN)
    assert {f.check for f in report.failures} == {check}, render_text(report)
