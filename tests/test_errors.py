"""Errors tell bugs from mistakes (issue 24, item 3): every expected error derives from
errors.ReconcilerError, which the front ends show in one line (exit 1; a 4xx from the API);
anything else is a bug: its traceback and a line asking to report it (exit 3; a 500 with the
traceback logged). The bugs are injected by patching our own planner or service in-process."""

from __future__ import annotations

import logging

import pytest
from cli_helpers import reconcile
from conftest import KO_EN

from reconciler import engine
from reconciler.errors import BUG_REPORT, EXIT_BUG, ReconcilerError
from reconciler.store import StoreError


@pytest.mark.parametrize("bug", [KeyError("sectionId"), ValueError("bad value"),
                                 OSError(9, "Bad file descriptor")])
def test_a_bug_in_the_planner_prints_its_traceback_and_asks_for_a_report(
        repo, tmp_path, monkeypatch, bug):
    """A ValueError or an OSError from our own code is a bug too: not one tidy `Error:` line
    (as they were before), but the traceback, the report line, exit 3."""
    def broken_planner(*_args, **_kwargs):
        raise bug

    repo.write(11, KO_EN)
    monkeypatch.setattr(engine, "make_plan", broken_planner)
    res = reconcile("plan", repo.manifests, "--store", f"file://{tmp_path / 'store'}")
    assert res.code == EXIT_BUG, res.stderr
    assert "Traceback (most recent call last):" in res.stderr
    assert "in broken_planner" in res.stderr  # where the bug is
    assert f"{type(bug).__name__}: " in res.stderr
    assert res.stderr.rstrip().splitlines()[-1] == BUG_REPORT
    assert not [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert res.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (("--section", "99"), "Error: --section 99: no manifest declares it"),
    (("--store", "ftp://bucket"), "Error: store URL 'ftp://bucket' is not a store: expected "
                                  "s3://BUCKET[/PREFIX] or file:///ABSOLUTE/DIR"),
    (("--out", "{tmp}/no/such/folder/plan.json"),
     "Error: --out {tmp}/no/such/folder/plan.json: cannot write the plan (No such file or "
     "directory)"),
])
def test_a_usage_mistake_is_one_line_and_exit_1(repo, tmp_path, args, message):
    repo.write(11, KO_EN)
    args = tuple(a.format(tmp=tmp_path) for a in args)
    store = ("--store", f"file://{tmp_path / 'store'}") if "--store" not in args else ()
    res = reconcile("plan", repo.manifests, *store, *args)
    assert res.code == 1, res.stderr
    assert res.stderr.splitlines() == [message.format(tmp=tmp_path)]


def test_a_store_folder_that_cannot_be_written_is_the_store_s_error(repo, tmp_path):
    """The local store's disk errors are StoreErrors naming the store and the file (before,
    bare OSErrors, expected only because every OSError was): here the store's folder is a
    file, so nothing can be written under it; the section fails, named, with no traceback."""
    repo.write(11, KO_EN)
    store = tmp_path / "store"
    store.write_text("not a folder")
    res = reconcile("apply", repo.manifests, "--store", f"file://{store}")
    assert res.code == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert f"file://{store}" in res.stdout + res.stderr, res.stdout + res.stderr


def test_every_seam_s_error_and_every_usage_error_is_a_reconciler_error():
    from reconciler.api.allowlist import ApiConfigError
    from reconciler.api.errors import ApiError
    from reconciler.api.jobstore import JobStoreBusy, JobStoreError
    from reconciler.cdn import CdnError
    from reconciler.cli import Cancelled
    from reconciler.dubbing import DubbingError
    from reconciler.errors import UsageError
    from reconciler.git import GitError
    from reconciler.github.client import GitHubError
    from reconciler.hls import PlaylistError
    from reconciler.inputs import InputError
    from reconciler.lock import LockError
    from reconciler.manifest import InvalidManifests
    from reconciler.mp4 import InitSegmentError
    from reconciler.packager import MediaError
    from reconciler.planfile import StalePlan
    from reconciler.runtime import WorkFolderError
    from reconciler.sources import FetchError
    from reconciler.subtitles import SubtitleError

    expected = [ApiConfigError, ApiError, JobStoreBusy, JobStoreError, WorkFolderError,
                CdnError, Cancelled, DubbingError, UsageError, GitError, GitHubError,
                PlaylistError, InputError, LockError, InvalidManifests, InitSegmentError,
                MediaError, StalePlan,
                FetchError, SubtitleError, StoreError, engine.SpendLimitExceeded]
    assert [e.__name__ for e in expected if not issubclass(e, ReconcilerError)] == []


@pytest.fixture
def api_client(tmp_path, monkeypatch):
    """The API app on a local store, in-process (its handlers are what is tested here)."""
    from fastapi.testclient import TestClient

    from reconciler.api import ApiConfig, create_app

    monkeypatch.setenv("RECONCILER_API_TOKEN", "t")
    (tmp_path / "manifests").mkdir()
    config = ApiConfig.from_env(tmp_path / "manifests", tmp_path / "data",
                                store_url=f"file://{tmp_path / 'store'}")
    with TestClient(create_app(config), raise_server_exceptions=False,
                    headers={"Authorization": "Bearer t"}) as client:
        yield client


def test_the_api_answers_a_bug_with_500_and_logs_its_traceback(api_client, monkeypatch,
                                                                 caplog):
    from reconciler.api.service import DubbingService

    def broken(_self, _sid):
        raise KeyError("languages")

    monkeypatch.setattr(DubbingService, "section", broken)
    with caplog.at_level(logging.ERROR, logger="reconciler"):
        res = api_client.get("/api/sections/11")
    assert res.status_code == 500
    assert res.json()["error"] == "internal" and "languages" not in res.text
    crash = [r for r in caplog.records if r.exc_info]
    assert crash and crash[0].exc_info[0] is KeyError
    assert BUG_REPORT in crash[0].getMessage()


def test_the_api_answers_an_expected_error_with_4xx_naming_it(api_client, monkeypatch):
    from reconciler.api.service import DubbingService

    def unreachable(_self, _sid):
        raise StoreError("store s3://gone cannot be read: NoSuchBucket")

    monkeypatch.setattr(DubbingService, "section", unreachable)
    res = api_client.get("/api/sections/11")
    assert res.status_code == 409
    assert res.json() == {"error": "failed", "field": None,
                          "message": "store s3://gone cannot be read: NoSuchBucket"}


def test_a_bug_in_a_section_s_step_is_shown_and_no_master_names_what_is_missing(
        repo, tmp_path, monkeypatch):
    """An OSError from our own packaging code used to be recorded as the language's failure
    (one line, exit 1) like a broken input; it is a bug: the apply stops with its traceback
    (exit 3) once the media steps end, before any master is written, so master.m3u8 never
    names a rendition that is not there."""
    from reconciler.packager.ffmpeg import FfmpegPackager

    def broken_encode(*_args, **_kwargs):
        raise OSError(22, "Invalid argument")

    repo.write(11, KO_EN)
    monkeypatch.setattr(FfmpegPackager, "encode_audio", broken_encode)
    store = tmp_path / "store"
    res = reconcile("apply", repo.manifests, "--store", f"file://{store}")
    assert res.code == EXIT_BUG, res.stdout + res.stderr
    assert "in broken_encode" in res.stderr and res.stderr.rstrip().endswith(BUG_REPORT)
    assert not (store / "assets/curriculumsection/11/master.m3u8").exists()


@pytest.mark.parametrize(("raised", "code"), [(KeyError("include"), EXIT_BUG), (None, 1)])
def test_the_github_glue_tells_a_bug_from_an_expected_error(tmp_path, monkeypatch, capsys,
                                                            raised, code):
    import importlib

    from reconciler.github.client import GitHubError

    glue = importlib.import_module("reconciler.github.cli")  # the package exports its group

    def broken(_text):
        raise raised or GitHubError("GET /repos/o/r: 404 Not Found")

    monkeypatch.setattr(glue, "append_summary", broken)
    (tmp_path / "report.md").write_text("plan\n")
    with pytest.raises(SystemExit) as exited:
        glue.main(["summary", "--file", str(tmp_path / "report.md")])
    assert exited.value.code == code
    err = capsys.readouterr().err
    if raised:
        assert "Traceback" in err and "in broken" in err and err.rstrip().endswith(BUG_REPORT)
    else:
        assert err == "Error: GET /repos/o/r: 404 Not Found\n"
