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
