"""GitHub Actions glue: the sticky PR plan comment, the apply matrix, step outputs and summaries.

The workflows in .github/workflows and the composite action.yml call `python -m reconciler.github`
so that their YAML stays declarative and the decisions (exit-code mapping, truncation, which
sections go to which job) are plain Python that the tests exercise.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import uuid
import zipfile
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from . import git

MARKER = "<!-- reconciler-plan -->"
STALE_MARKER = "<!-- reconciler-stale-plan"  # + the job's sections + " -->": one per apply job
PLAN_WORKFLOW = "plan.yml"  # the workflow whose artifact holds a pull request's reviewed plan
PLAN_ARTIFACT = "reconciler-plan"
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
DRIFT_MARKER = "<!-- reconciler-drift -->"
DRIFT_TITLE = "Drift: the store no longer matches the manifests on main"
DRIFT_HEADLINE = (
    "📝 **Drift**: the nightly plan found changes pending. Re-run the apply workflow (Actions → "
    "apply → Run workflow) or change the manifests. This issue is updated by each drift check "
    "and closed by the first one that finds none."
)
COMMENT_LIMIT = 65_536  # GitHub rejects issue-comment bodies longer than this (characters)
# $GITHUB_STEP_SUMMARY takes at most 1 MiB per step; 250k characters stay below that even at
# 4 UTF-8 bytes per character.
SUMMARY_LIMIT = 250_000
COLLAPSE_LINES = 40
ERROR_TAIL_LINES = 40  # stderr lines shown with a failure (the full log stays in the run)
BOT_LOGIN = "github-actions[bot]"
MAX_MATRIX_JOBS = 256  # GitHub's limit of jobs per matrix
ZERO_SHA = "0" * 40
# Changes here can alter any section's plan, so --changed-since would hide work.
FULL_PLAN_PATHS = ("schemas/", "reconciler/", "pyproject.toml")
_SECTION_ID = re.compile(r"[1-9][0-9]*")
_FENCE = re.compile(r"(`{3,}|~{3,})")


class GitHubError(RuntimeError):
    """A GitHub API call failed; the message names the request, never the token."""


# --------------------------------------------------------------------------- exit codes


def plan_exit_ok(code: int) -> bool:
    """`reconcile --plan` exits 2 for "changes pending": a result, not a failure."""
    return code in (0, 2)


def status_line(mode: str, exit_code: int) -> str:
    """One neutral sentence for a reconcile exit code, shared by comments and summaries."""
    if mode == "plan":
        if exit_code == 0:
            return "✅ **No changes**: the store already matches the manifests."
        if exit_code == 2:
            return "📝 **Changes pending**: the store differs from the manifests."
        return f"❌ **Error** (exit {exit_code}): the reconciler could not produce a plan."
    if mode == "apply":
        if exit_code == 0:
            return "✅ **Converged**: the store now matches the manifests."
        return f"❌ **Apply failed** (exit {exit_code}): the store may be partly updated."
    if exit_code == 0:
        return "✅ **Manifests are valid.**"
    return f"❌ **Validation failed** (exit {exit_code})."


# --------------------------------------------------------------------------- comment body


def _headline(exit_code: int, validate_only: bool) -> str:
    if validate_only:
        return (
            f"{status_line('validate', exit_code)}\n\n"
            "🔒 **Validation only.** This pull request comes from a fork, so the workflow has no "
            "AWS credentials: only `reconcile validate` ran and the store was not read. "
            "No plan was computed. A maintainer can push the branch to this repository to get one."
        )
    line = status_line("plan", exit_code)
    if exit_code == 2:
        return line + " Merging this pull request applies the plan below."
    if exit_code != 0:
        return line + " See the run log."
    return line


def _open_fence(lines: Sequence[str]) -> str | None:
    """The code fence left open at the end of `lines` (so a cut can close it), if any."""
    fence: str | None = None
    for line in lines:
        match = _FENCE.match(line.lstrip())
        if not match:
            continue
        mark = match.group(1)
        if fence is None:
            fence = mark
        elif mark[0] == fence[0] and len(mark) >= len(fence) and line.strip() == mark:
            fence = None
    return fence


def _render(
    head: str,
    lines: Sequence[str],
    *,
    collapsed: bool,
    total: int,
    footer: str,
    note: str | None,
) -> str:
    parts = [head]
    if collapsed:
        parts.append(f"<details><summary>Show plan ({total} lines)</summary>\n")
    parts.append("\n".join(lines))
    fence = _open_fence(lines) if note else None
    if fence:
        parts.append(fence)
    if collapsed:
        parts.append("\n</details>")
    if note:
        parts.append("\n" + note)
    elif footer:
        parts.append("\n" + footer)
    return "\n".join(parts) + "\n"


def build_comment(
    markdown: str,
    *,
    exit_code: int,
    run_url: str | None,
    validate_only: bool,
    marker: str = MARKER,
    limit: int = COMMENT_LIMIT,
    commit: str | None = None,
    heading: tuple[str, str] | None = None,
) -> str:
    """The sticky comment: marker, headline, plan (collapsed if long), cut to fit `limit`.

    `limit` counts characters, as GitHub does; the result never exceeds it. `heading`
    (title, headline) replaces the PR comment's, e.g. for the drift issue's body.
    """
    title = "### Reconciler validation" if validate_only else "### Reconciler plan"
    title, headline = heading or (title, _headline(exit_code, validate_only))
    head = f"{marker}\n{title}\n\n{headline}\n"
    lines = markdown.rstrip().splitlines() or ["_(no output)_"]
    total = len(lines)
    collapsed = total > COLLAPSE_LINES
    meta = [f"commit `{commit[:12]}`"] if commit else []
    if run_url:
        meta.append(f"[run log]({run_url})")
    footer = f"<sub>{' · '.join(meta)}</sub>" if meta else ""

    full = _render(head, lines, collapsed=collapsed, total=total, footer=footer, note=None)
    if len(full) <= limit:
        return full

    where = f"[job summary and artifact]({run_url})" if run_url else (
        "this workflow run's job summary and its artifact"
    )

    def cut(kept: int) -> str:
        note = (
            f"⚠️ **Truncated**: {kept} of {total} lines shown (GitHub comments are limited to "
            f"{COMMENT_LIMIT:,} characters). Full plan: {where}"
        )
        return _render(head, lines[:kept], collapsed=collapsed, total=total, footer="", note=note)

    lo, hi = 0, total  # invariant: cut(lo) fits, unless even lo == 0 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(cut(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    body = cut(lo)
    # Only an absurd marker/run_url can make the empty cut too long; never break the limit.
    return body if len(body) <= limit else body[:limit]


# --------------------------------------------------------------------------- REST API


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "lingoost-reconciler",
    }


def _check(resp: httpx.Response) -> httpx.Response:
    if resp.is_success:
        return resp
    try:
        message = str(resp.json().get("message", ""))
    except (ValueError, AttributeError):
        message = resp.text[:200]
    path = resp.request.url.path
    raise GitHubError(f"{resp.request.method} {path}: HTTP {resp.status_code} {message}".rstrip())


def _same_origin(url: str, api_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(api_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _pick(comments: Iterable[dict[str, Any]], marker: str) -> dict[str, Any] | None:
    """The comment carrying `marker` at its start, the Actions bot's first."""
    ours = [c for c in comments if str(c.get("body") or "").lstrip().startswith(marker)]
    bots = [c for c in ours if (c.get("user") or {}).get("login") == BOT_LOGIN]
    return (bots or ours or [None])[0]


def _list_all(http: httpx.Client, api: str, url: str, token: str,
              params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paginated GET, following Link: next on the API's own host only."""
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    query: dict[str, Any] | None = {"per_page": 100, **params}
    while next_url:
        if not _same_origin(next_url, api):  # never send the token to another host
            host = urlsplit(next_url).netloc
            raise GitHubError(f"refusing pagination link to another host: {host}")
        resp = _check(http.get(next_url, params=query, headers=_headers(token)))
        items.extend(resp.json())
        next_url = resp.links.get("next", {}).get("url")
        query = None  # the next link carries its own query
    return items


def upsert_comment(
    repo: str,
    pr_number: int,
    body: str,
    token: str,
    api_url: str = "https://api.github.com",
    client: httpx.Client | None = None,
    marker: str = MARKER,
) -> int:
    """Update the PR's marked comment in place, or create it; returns the comment id.

    One comment per PR, edited on every push, keeps the conversation readable.
    """
    api = api_url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    try:
        comments = _list_all(http, api, f"{api}/repos/{repo}/issues/{pr_number}/comments",
                             token, {})
        found = _pick(comments, marker)
        if found is not None:
            resp = _check(
                http.patch(
                    f"{api}/repos/{repo}/issues/comments/{found['id']}",
                    json={"body": body},
                    headers=_headers(token),
                )
            )
        else:
            resp = _check(
                http.post(
                    f"{api}/repos/{repo}/issues/{pr_number}/comments",
                    json={"body": body},
                    headers=_headers(token),
                )
            )
        return int(resp.json()["id"])
    except httpx.HTTPError as err:  # transport errors: name the kind, not the request headers
        raise GitHubError(f"GitHub API request failed: {type(err).__name__}") from None
    finally:
        if own:
            http.close()


def sync_drift_issue(
    repo: str,
    exit_code: int,
    report: str,
    token: str,
    api_url: str = "https://api.github.com",
    run_url: str | None = None,
    client: httpx.Client | None = None,
) -> str:
    """Keep one open issue for drift, as tfaction does: opened (or its body updated with the
    latest plan) when the nightly plan exits 2, closed with a comment when it exits 0, left
    alone on an error (exit 1: nothing is known). Returns what was done, for the log."""
    api = api_url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    try:
        issues = [i for i in _list_all(http, api, f"{api}/repos/{repo}/issues", token,
                                       {"state": "open"})
                  if "pull_request" not in i]
        found = _pick(issues, DRIFT_MARKER)
        if exit_code == 2:
            body = build_comment(report, exit_code=2, run_url=run_url, validate_only=False,
                                 marker=DRIFT_MARKER, heading=("### Reconciler drift",
                                                               DRIFT_HEADLINE))
            if found is not None:
                _check(http.patch(f"{api}/repos/{repo}/issues/{found['number']}",
                                  json={"body": body}, headers=_headers(token)))
                return f"updated drift issue #{found['number']}"
            resp = _check(http.post(f"{api}/repos/{repo}/issues",
                                    json={"title": DRIFT_TITLE, "body": body},
                                    headers=_headers(token)))
            return f"opened drift issue #{resp.json()['number']}"
        if exit_code == 0 and found is not None:
            where = f" ([run]({run_url}))" if run_url else ""
            _check(http.post(f"{api}/repos/{repo}/issues/{found['number']}/comments",
                             json={"body": f"✅ No drift any more{where}: closing."},
                             headers=_headers(token)))
            _check(http.patch(f"{api}/repos/{repo}/issues/{found['number']}",
                              json={"state": "closed", "state_reason": "completed"},
                              headers=_headers(token)))
            return f"closed drift issue #{found['number']}"
        return "no drift issue to change" if exit_code == 0 else "plan failed: issue left as is"
    except httpx.HTTPError as err:
        raise GitHubError(f"GitHub API request failed: {type(err).__name__}") from None
    finally:
        if own:
            http.close()


# --------------------------------------------------------------------------- matrix


def parse_sections(text: str | Iterable[str | int]) -> list[str]:
    """Section ids in first-seen order, each once; rejects anything but positive integers.

    The ids end up in shell command lines, so nothing else may pass.
    """
    items = re.split(r"[\s,]+", text) if isinstance(text, str) else [str(t) for t in text]
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        if not _SECTION_ID.fullmatch(item):
            raise ValueError(f"not a section id: {item!r}")
        seen.setdefault(item, None)
    return list(seen)


def sections_from_plan(plan: dict[str, Any]) -> list[str]:
    """Sections of a `--format json` plan (or a saved plan file) that have actions."""
    plan = plan.get("plan", plan) if plan.get("kind") == "reconciler-saved-plan" else plan
    return parse_sections(
        str(s["sectionId"]) for s in plan.get("sections", []) if s.get("actions")
    )


def build_matrix(sections: str | Iterable[str | int], chunks: int) -> dict[str, Any]:
    """A `strategy.matrix` splitting sections into at most `chunks` contiguous, balanced jobs.

    Each section lands in exactly one job, so no two jobs of a run touch the same section.
    """
    if chunks < 1:
        raise ValueError("chunks must be >= 1")
    ids = parse_sections(sections)
    n = min(chunks, len(ids), MAX_MATRIX_JOBS)
    include: list[dict[str, Any]] = []
    start = 0
    for i in range(n):
        size = len(ids) // n + (1 if i < len(ids) % n else 0)
        part = ids[start : start + size]
        start += size
        include.append(
            {
                "chunk": i + 1,
                "name": " ".join(part) if len(part) <= 3 else f"{part[0]}…{part[-1]} ({len(part)})",
                "sections": " ".join(part),
            }
        )
    return {"include": include}


# --------------------------------------------------------------------------- runner plumbing


def set_output(name: str, value: str) -> None:
    """Write a step output to $GITHUB_OUTPUT (no-op outside Actions)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        if "\n" in value:
            delim = f"EOF_{uuid.uuid4().hex}"
            fh.write(f"{name}<<{delim}\n{value}\n{delim}\n")
        else:
            fh.write(f"{name}={value}\n")


def fit_summary(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """`text` cut on a line boundary so the step summary upload is not rejected."""
    if len(text) <= limit:
        return text
    note = "\n\n⚠️ **Truncated** for the job summary; the full report is in the run's artifact.\n"
    cut = text[: limit - len(note)]
    cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else cut
    return cut + note


def append_summary(text: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY, or print when run locally."""
    text = fit_summary(text)
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        click.echo(text)
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def _fenced(text: str) -> str:
    if not text.strip():
        return ""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}\n"


def _run_url() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def changed_files(base: str, cwd: Path | None = None) -> list[str] | None:
    """Paths changed between `base` and HEAD, or None when `base` is not a usable commit."""
    if not base or base == ZERO_SHA:
        return None
    try:
        git.run(cwd, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
        diff = git.run(cwd, "diff", "--name-only", f"{base}...HEAD")
    except git.GitError:
        return None
    return [line for line in diff.splitlines() if line]


def plan_scope(base: str, cwd: Path | None = None) -> tuple[str | None, str]:
    """(--changed-since ref or None for a full plan, why), from what changed since `base`."""
    files = changed_files(base, cwd)
    if files is None:
        return None, f"full: base {base or '(none)'!r} is not a known commit"
    code = [f for f in files if f == "pyproject.toml" or f.startswith(FULL_PLAN_PATHS)]
    if code:
        return None, f"full: reconciler inputs changed ({', '.join(code[:5])})"
    return base, f"changed since {base}"


def build_command(
    mode: str,
    *,
    paths: str = "",
    store: str = "",
    changed_since: str = "",
    sections: str = "",
    fmt: str = "",
    max_dub_minutes: str = "",
) -> list[str]:
    """The `reconcile` argv for the composite action's inputs."""
    targets = paths.split()
    if mode == "validate":
        return ["reconcile", "validate", *targets]
    if mode not in ("plan", "apply"):
        raise ValueError(f"mode must be plan, apply or validate, not {mode!r}")
    argv = ["reconcile", f"--{mode}", *targets]
    for section in parse_sections(sections):
        argv += ["--section", section]
    if store:
        argv += ["--store", store]
    if changed_since:
        argv += ["--changed-since", changed_since]
    if fmt:
        argv += ["--format", fmt]
    if max_dub_minutes and mode == "apply":
        argv += ["--max-dub-minutes", str(float(max_dub_minutes))]
    return argv


def _execute(command: Sequence[str], tail_lines: int) -> tuple[int, str, list[str]]:
    """Run `command`; return (exit code, stdout, last stderr lines).

    stderr (progress, errors) is streamed live to our stderr, so long applies show progress.
    """
    tail: deque[str] = deque(maxlen=tail_lines)
    try:
        proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as err:
        return 1, "", [f"could not run {command[0]!r}: {err.strerror or err}"]

    def pump() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", errors="replace")
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read().decode("utf-8", errors="replace")
    code = proc.wait()
    reader.join()
    return (code if code >= 0 else 1), out, list(tail)


def _with_errors(text: str, errors: Sequence[str]) -> str:
    if not errors:
        return text
    block = _fenced("\n".join(errors))
    lead = f"{text.rstrip()}\n\n" if text.strip() else ""
    return f"{lead}**Errors** (last {len(errors)} lines of stderr):\n\n{block}"


def run_reconcile(
    command: Sequence[str],
    *,
    mode: str,
    report: Path,
    fence: bool = False,
    summary: bool = False,
    title: str | None = None,
    fail_on_changes: bool = False,
    fence_summary: bool | None = None,
    errors_in_report: bool = False,
    stderr_tail: list[str] | None = None,
) -> int:
    """Run reconcile, keep its stdout as the report, set step outputs; return the step's status.

    A plan's exit 2 (changes pending) is success unless `fail_on_changes` (drift checks).
    `fence` wraps the report file in a code block (text shown as markdown); `fence_summary`
    (default: `fence`) does so for the job summary only, keeping e.g. JSON reports parseable.
    On failure the tail of stderr (where reconcile writes its errors) is added to the summary,
    and to the report file if `errors_in_report` (markdown reports meant for humans).
    `stderr_tail`, when given, receives the last lines of stderr.
    """
    code, out, tail = _execute(command, ERROR_TAIL_LINES)
    if stderr_tail is not None:
        stderr_tail[:] = tail
    ok = plan_exit_ok(code) if mode == "plan" else code == 0
    errors = [] if ok else tail
    sys.stdout.write(out)
    sys.stdout.flush()
    text = _fenced(out) if fence else out
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(_with_errors(text, errors) if errors_in_report else text, encoding="utf-8")
    changes = mode == "plan" and code == 2
    set_output("exit-code", str(code))
    set_output("changes", "true" if changes else "false")
    set_output("report-file", str(report.resolve()))
    if summary:
        heading = f"## {title}\n\n" if title else ""
        shown = _fenced(out) if (fence if fence_summary is None else fence_summary) else out
        body = _with_errors(shown, errors)
        append_summary(f"{heading}{status_line(mode, code)}\n\n{body}")
    if ok and mode == "plan":
        return 2 if (changes and fail_on_changes) else 0
    return code


def pr_from_event(path: str | None) -> tuple[int, str | None]:
    """PR number and head SHA from the workflow's event payload."""
    if not path:
        raise click.ClickException("GITHUB_EVENT_PATH is not set")
    event = json.loads(Path(path).read_text(encoding="utf-8"))
    pr = event.get("pull_request") or {}
    number = pr.get("number") or event.get("number") or (event.get("issue") or {}).get("number")
    if not number:
        raise click.ClickException("the event has no pull request number")
    return int(number), (pr.get("head") or {}).get("sha")


# --------------------------------------------------------------------------- reviewed plan


def _get(http: httpx.Client, api: str, path: str, token: str,
         params: dict[str, Any] | None = None) -> Any:
    return _check(http.get(f"{api}{path}", params=params, headers=_headers(token))).json()


def _download_artifact(http: httpx.Client, url: str, api: str, token: str) -> bytes:
    """The artifact's zip. GitHub answers with a redirect to short-lived blob storage on
    another host, which is followed *without* the token."""
    if not _same_origin(url, api):
        raise GitHubError(f"refusing artifact URL on another host: {urlsplit(url).netloc}")
    resp = http.get(url, headers=_headers(token), follow_redirects=False)
    if resp.is_redirect:
        location = resp.headers["location"]
        resp = http.get(location, headers={"User-Agent": "lingoost-reconciler"},
                        follow_redirects=False)
    _check(resp)
    if len(resp.content) > MAX_ARTIFACT_BYTES:
        raise GitHubError("the plan artifact is implausibly large")
    return resp.content


def fetch_reviewed_plan(
    repo: str,
    sha: str,
    token: str,
    dest: Path,
    api_url: str = "https://api.github.com",
    client: httpx.Client | None = None,
) -> tuple[int | None, str]:
    """Find the plan reviewed in the pull request merged as `sha` and write it to `dest`.

    The plan is the `plan.json` in the `reconciler-plan` artifact of the newest successful
    `plan` workflow run for the pull request's head commit: exactly what the sticky comment
    showed. Returns (pull request number or None, what happened, in words); `dest` is
    written only when the plan was found.
    """
    api = api_url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=60.0)
    try:
        pulls = _get(http, api, f"/repos/{repo}/commits/{sha}/pulls", token)
        merged = [p for p in pulls if p.get("merged_at")]
        if not merged:
            return None, f"no merged pull request for commit {sha[:12]}"
        pr = merged[0]
        number, head = int(pr["number"]), str(pr["head"]["sha"])
        runs = _get(http, api, f"/repos/{repo}/actions/workflows/{PLAN_WORKFLOW}/runs", token,
                    {"head_sha": head, "event": "pull_request", "status": "success",
                     "per_page": 10})
        found = runs.get("workflow_runs") or []
        if not found:
            return number, f"no successful plan run for #{number} at {head[:12]}"
        run_id = int(found[0]["id"])
        artifacts = _get(http, api, f"/repos/{repo}/actions/runs/{run_id}/artifacts", token,
                         {"name": PLAN_ARTIFACT})
        usable = [a for a in artifacts.get("artifacts") or [] if not a.get("expired")]
        if not usable:
            return number, f"plan run {run_id} of #{number} has no {PLAN_ARTIFACT} artifact " \
                           "(expired?)"
        data = _download_artifact(http, usable[0]["archive_download_url"], api, token)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                plan = archive.read("plan.json")
        except (zipfile.BadZipFile, KeyError):
            return number, f"the {PLAN_ARTIFACT} artifact of run {run_id} holds no plan.json " \
                           "(the plan had errors?)"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(plan)
        return number, f"the plan reviewed in #{number} (plan run {run_id})"
    except httpx.HTTPError as err:
        raise GitHubError(f"GitHub API request failed: {type(err).__name__}") from None
    finally:
        if own:
            http.close()


def stale_comment(reason: str, sections: Sequence[str], new_plan: str, *, replanned: bool,
                  run_url: str | None) -> str:
    """What the merged pull request is told when its reviewed plan can no longer be applied."""
    ids = " ".join(sections)
    action = ("`RECONCILER_REPLAN_ON_STALE` is on, so the plan below was applied instead."
              if replanned else
              "Nothing was applied for these sections and the job failed. Review the plan "
              "below, then re-run the apply workflow (workflow_dispatch) or open a pull "
              "request that fixes it.")
    link = f"\n\n[Workflow run]({run_url})" if run_url else ""
    head = (f"{STALE_MARKER} {ids} -->\n### ⚠️ Reviewed plan is stale (sections {ids})\n\n"
            f"{reason}.\n\n{action}\n\n#### The plan now\n\n")
    room = COMMENT_LIMIT - len(head) - len(link) - 100
    body = new_plan if len(new_plan) <= room else new_plan[:room] + "\n\n…(truncated)"
    return head + body + link


def apply_reviewed(
    reconcile: Sequence[str],
    plan_file: Path,
    sections: Sequence[str],
    *,
    report: Path,
    missing_reason: str = "",
    replan_on_stale: bool = False,
    extra: Sequence[str] = (),
    post: Any = None,
) -> int:
    """Apply the reviewed plan to this job's sections; when it is stale (or missing), post the
    plan as it is now (job summary, and `post(body)`: the merged PR's comment) and fail, or
    with `replan_on_stale` apply that new plan. Returns the job's exit status."""
    scope = [arg for s in sections for arg in ("--section", s)]
    title = f"Apply: sections {' '.join(sections)}"
    paths: list[str] = []  # the manifests the reviewed plan read (default: manifests/)
    if plan_file.is_file():
        try:
            paths = list(json.loads(plan_file.read_text(encoding="utf-8"))["manifests"]["paths"])
        except (ValueError, KeyError, TypeError):
            paths = []  # not a plan: reconcile says so below
        tail: list[str] = []
        code = run_reconcile([*reconcile, "--apply", str(plan_file), *scope, "--format",
                              "markdown", *extra], mode="apply", report=report, summary=True,
                             title=title, stderr_tail=tail)
        stale = [line for line in tail if line.startswith("Error: stale plan:")]
        if not stale:
            return code
        reason = stale[-1].removeprefix("Error: ")
    else:
        reason = f"no reviewed plan: {missing_reason or f'{plan_file} not found'}"
    new_report = report.with_name("replan-" + report.name)
    run_reconcile([*reconcile, "--plan", *paths, "--format", "markdown", *scope], mode="plan",
                  report=new_report, errors_in_report=True)
    body = stale_comment(reason, sections, new_report.read_text(encoding="utf-8"),
                         replanned=replan_on_stale, run_url=_run_url())
    append_summary(body)
    if post is not None:
        post(body)
    if not replan_on_stale:
        click.echo(f"::error::{reason}; sections {' '.join(sections)} not applied", err=True)
        return 1
    return run_reconcile([*reconcile, "--apply", *paths, *scope, "--format", "markdown", *extra],
                         mode="apply", report=report, summary=True,
                         title=f"{title} (re-planned)")


# --------------------------------------------------------------------------- CLI


@click.group()
def cli() -> None:
    """Helpers for the reconciler's GitHub workflows."""


@cli.command("comment")
@click.option("--plan-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--exit-code", type=int, required=True)
@click.option(
    "--validate-only", is_flag=True, envvar="RECONCILER_VALIDATE_ONLY",
    help="Fork PR: only validation ran (env RECONCILER_VALIDATE_ONLY=true works too).",
)
@click.option("--run-url", default=None, help="Defaults to this workflow run's URL.")
@click.option("--summary/--no-summary", default=True, help="Also write the job summary.")
def comment_cmd(
    plan_file: Path, exit_code: int, validate_only: bool, run_url: str | None, summary: bool
) -> None:
    """Post or update the sticky plan comment on the pull request."""
    run_url = run_url or _run_url()
    text = plan_file.read_text(encoding="utf-8") if plan_file.exists() else ""
    number, sha = pr_from_event(os.environ.get("GITHUB_EVENT_PATH"))
    kwargs: dict[str, Any] = {
        "exit_code": exit_code, "run_url": run_url, "validate_only": validate_only, "commit": sha
    }
    if summary:
        append_summary(build_comment(text, limit=SUMMARY_LIMIT, **kwargs))
    repo, token, api = _repo_token()
    body = build_comment(text, **kwargs)
    try:
        cid = upsert_comment(repo, number, body, token, api_url=api)
    except GitHubError as err:
        if validate_only and "HTTP 403" in str(err):
            # Fork PRs get a read-only token; the job summary carries the result instead.
            click.echo(f"::warning::no PR comment (read-only token on a fork PR): {err}")
            return
        raise click.ClickException(str(err)) from None
    click.echo(f"comment {cid} on {repo}#{number}")


def _repo_token() -> tuple[str, str, str]:
    repo, token = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("GITHUB_TOKEN")
    if not repo or not token:
        raise click.ClickException("GITHUB_REPOSITORY and GITHUB_TOKEN must be set")
    return repo, token, os.environ.get("GITHUB_API_URL", "https://api.github.com")


@cli.command("reviewed-plan")
@click.option("--sha", required=True, help="The merge commit on the default branch.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def reviewed_plan_cmd(sha: str, out: Path) -> None:
    """Fetch the plan reviewed in the pull request merged as SHA (outputs found, pr, reason)."""
    repo, token, api = _repo_token()
    try:
        number, what = fetch_reviewed_plan(repo, sha, token, out, api_url=api)
    except GitHubError as err:
        number, what = None, str(err)
    found = out.is_file()
    set_output("found", "true" if found else "false")
    set_output("pr", str(number or ""))
    set_output("reason", what)
    click.echo(f"reviewed plan: {what}", err=True)


@cli.command("apply-reviewed")
@click.option("--plan-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--sections", required=True, help='This job\'s section ids ("11 12").')
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--pr", type=int, default=None, help="The merged pull request to tell.")
@click.option("--missing-reason", default="", help="Why there is no plan file, if there is none.")
@click.option("--replan-on-stale", is_flag=True, envvar="RECONCILER_REPLAN_ON_STALE",
              help="Apply a fresh plan when the reviewed one is stale (default: fail).")
@click.option("--max-dub-minutes", default="", help="Passed to reconcile --apply.")
@click.option("--reconcile", "reconcile_cmd", default="reconcile", hidden=True)
def apply_reviewed_cmd(plan_file: Path, sections: str, report: Path, pr: int | None,
                       missing_reason: str, replan_on_stale: bool, max_dub_minutes: str,
                       reconcile_cmd: str) -> None:
    """Apply the merged pull request's reviewed plan to these sections (see docs/github.md)."""
    try:
        ids = parse_sections(sections)
        extra = ["--max-dub-minutes", str(float(max_dub_minutes))] if max_dub_minutes else []
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    def post(body: str) -> None:
        repo, token, api = _repo_token()
        try:
            upsert_comment(repo, pr, body, token, api_url=api,
                           marker=f"{STALE_MARKER} {' '.join(ids)} -->")
        except GitHubError as err:  # the job summary still has it
            click.echo(f"::warning::could not comment on #{pr}: {err}", err=True)

    sys.exit(apply_reviewed(shlex.split(reconcile_cmd), plan_file, ids, report=report,
                            missing_reason=missing_reason, replan_on_stale=replan_on_stale,
                            extra=extra, post=post if pr else None))


@cli.command("drift-issue")
@click.option("--plan-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--exit-code", type=int, required=True, help="The drift plan's exit code.")
def drift_issue_cmd(plan_file: Path, exit_code: int) -> None:
    """Open, update or close the repository's one drift issue (needs issues: write)."""
    repo, token, api = _repo_token()
    text = plan_file.read_text(encoding="utf-8") if plan_file.exists() else ""
    try:
        click.echo(sync_drift_issue(repo, exit_code, text, token, api_url=api,
                                    run_url=_run_url()))
    except GitHubError as err:
        raise click.ClickException(str(err)) from None




@cli.command("matrix")
@click.option("--sections", default=None, help='Section ids, e.g. "11 12 13".')
@click.option(
    "--plan-json", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Take the sections that have actions from a `reconcile --plan --format json` output.",
)
@click.option("--chunks", type=click.IntRange(1, MAX_MATRIX_JOBS), default=4, show_default=True)
def matrix_cmd(sections: str | None, plan_json: Path | None, chunks: int) -> None:
    """Print a JSON job matrix (also as step outputs `matrix` and `count`)."""
    if (sections is None) == (plan_json is None):
        raise click.UsageError("give exactly one of --sections or --plan-json")
    try:
        ids = (
            sections_from_plan(json.loads(plan_json.read_text(encoding="utf-8")))
            if plan_json
            else parse_sections(sections or "")
        )
        matrix = build_matrix(ids, chunks)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise click.ClickException(f"cannot build the matrix: {err}") from None
    text = json.dumps(matrix, ensure_ascii=False, separators=(",", ":"))
    set_output("matrix", text)
    set_output("count", str(len(matrix["include"])))
    set_output("sections", " ".join(ids))
    click.echo(text)


@cli.command("summary")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--title", default=None)
def summary_cmd(file: Path, title: str | None) -> None:
    """Append a file (cut to the summary size limit) to $GITHUB_STEP_SUMMARY."""
    text = file.read_text(encoding="utf-8") if file.exists() else f"_({file} was not written)_\n"
    append_summary((f"## {title}\n\n" if title else "") + text)


@cli.command("scope")
@click.option("--base", default="", help="Ref/SHA to diff against; empty or zeros = full.")
def scope_cmd(base: str) -> None:
    """Decide between --changed-since BASE and a full plan (outputs `changed-since`, `full`)."""
    ref, why = plan_scope(base)
    set_output("changed-since", ref or "")
    set_output("full", "false" if ref else "true")
    click.echo(f"plan scope: {why}", err=True)
    click.echo(ref or "")


@cli.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("--mode", type=click.Choice(["plan", "apply", "validate"]), required=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--fence", is_flag=True, help="Wrap the output in a code block (text formats).")
@click.option("--summary", is_flag=True, help="Append the report to the job summary.")
@click.option("--title", default=None, help="Heading for the job summary.")
@click.option("--fail-on-changes", is_flag=True, help="Plan exit 2 fails (drift checks).")
@click.option(
    "--errors-in-report", is_flag=True,
    help="On failure, append the tail of stderr to the report file (markdown reports).",
)
@click.option(
    "--sections", default="",
    help='Section ids ("11 12"), validated and appended to COMMAND as --section flags.',
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(
    mode: str,
    report: Path,
    fence: bool,
    summary: bool,
    title: str | None,
    fail_on_changes: bool,
    errors_in_report: bool,
    sections: str,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND (after --), map its exit code, set outputs exit-code/changes/report-file."""
    try:
        extra = [arg for s in parse_sections(sections) for arg in ("--section", s)]
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    sys.exit(
        run_reconcile(
            [*command, *extra], mode=mode, report=report, fence=fence, summary=summary,
            title=title, fail_on_changes=fail_on_changes, errors_in_report=errors_in_report,
        )
    )


@cli.command("action")
@click.option("--mode", required=True)
@click.option("--paths", default="manifests")
@click.option("--store", default="")
@click.option("--changed-since", default="")
@click.option("--sections", default="")
@click.option("--format", "fmt", default="markdown")
@click.option("--max-dub-minutes", default="")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Default: $RUNNER_TEMP/reconciler-report.{md,json,txt} by format.",
)
def action_cmd(
    mode: str,
    paths: str,
    store: str,
    changed_since: str,
    sections: str,
    fmt: str,
    max_dub_minutes: str,
    report: Path | None,
) -> None:
    """The composite action's body: build the reconcile command from inputs and run it."""
    try:
        argv = build_command(
            mode, paths=paths, store=store, changed_since=changed_since, sections=sections,
            fmt=fmt, max_dub_minutes=max_dub_minutes,
        )
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    markdown = mode != "validate" and fmt == "markdown"
    if report is None:
        ext = "md" if markdown else "json" if (fmt == "json" and mode != "validate") else "txt"
        report = Path(os.environ.get("RUNNER_TEMP", ".")) / f"reconciler-report.{ext}"
    sys.exit(
        run_reconcile(
            argv, mode=mode, report=report, summary=True, title=f"Reconciler {mode}",
            fence_summary=not markdown,
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="python -m reconciler.github")


if __name__ == "__main__":
    main()
