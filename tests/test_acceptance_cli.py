"""The customer's acceptance, on a local store produced by the core pipeline: the three curl
checks through `reconcile preview`, and `reconcile verify` over HTTP, through the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
from cli_helpers import reconcile
from conftest import KO_EN
from media_helpers import running

from reconciler.preview import make_server
from reconciler.store import open_store

ORIGIN = "http://localhost:3000"


def test_core_output_passes_the_customers_checks_and_verify(repo, tmp_path):
    store_url = f"file://{tmp_path / 'store'}"
    repo.write(11, KO_EN + [{"code": "ja", "audio": "../media/ja.m4a"}])
    assert reconcile("--apply", repo.manifests, "--store", store_url).code == 0
    with running(make_server(open_store(store_url))) as base:
        checks = {
            "video/video.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=60"),
            "video/init.mp4": ("video/mp4", "public, max-age=31536000, immutable"),
            "audio/ko/init.mp4": ("video/mp4", "public, max-age=31536000, immutable"),
        }
        for path, (ctype, cache) in checks.items():
            resp = httpx.head(f"{base}/assets/curriculumsection/11/{path}",
                              headers={"Origin": ORIGIN})
            assert resp.status_code == 200, path
            assert resp.headers["content-type"] == ctype
            assert resp.headers["cache-control"] == cache
            assert resp.headers["access-control-allow-origin"] == ORIGIN

        ok = reconcile("verify", repo.manifests, "--cdn", base)
        assert ok.code == 0, ok.stdout
        assert "section 11: ok" in ok.stdout
        doc = reconcile("verify", repo.manifests, "--cdn", base, "--format", "json").json()
        assert doc["ok"] is True

        # Break one language the way the hand-run scripts did: its init.mp4 is missing.
        (Path(store_url[len("file://"):]) / "assets/curriculumsection/11/audio/en/init.mp4"
         ).unlink()
        bad = reconcile("verify", repo.manifests, "--cdn", base)
        assert bad.code == 1
        assert f"{base}/assets/curriculumsection/11/audio/en/init.mp4" in bad.stdout


def test_verify_without_a_cdn_url_is_a_usage_error(repo, monkeypatch):
    monkeypatch.delenv("NEXT_PUBLIC_CDN_URL", raising=False)
    repo.write(11, KO_EN)
    res = reconcile("verify", repo.manifests)
    assert res.code == 1 and "no CDN URL" in res.stderr


def test_misaligned_audio_is_reported(repo, tmp_path):
    """Trimmed only because the manifest opts in (`fit`; tests/test_audio_fit.py), and said."""
    repo.write(11, [{"code": "ko", "audio": "source"},
                    {"code": "en", "audio": "../media/long.mp3", "fit": "trim"}])
    res = reconcile("--apply", repo.manifests, "--store", f"file://{tmp_path / 'store'}")
    assert res.code == 0
    assert "warning: en: audio is 8.0s, video 5.0s: trimmed at its end" in res.stdout
