"""The GitHub REST calls the workflows need: upsert the sticky comment, keep the drift issue,
fetch a pull request's reviewed plan artifact. Errors name the request, never the token."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import ReconcilerError
from .comment import DRIFT_HEADLINE, DRIFT_MARKER, DRIFT_TITLE, MARKER, build_comment

PLAN_WORKFLOW = "plan.yml"  # the workflow whose artifact holds a pull request's reviewed plan


PLAN_ARTIFACT = "reconciler-plan"


MAX_ARTIFACT_BYTES = 64 * 1024 * 1024


BOT_LOGIN = "github-actions[bot]"


class GitHubError(ReconcilerError):
    """A GitHub API call failed; the message names the request, never the token."""


@dataclass(frozen=True)
class GitHubRepo:
    """One repository on the GitHub REST API, and how to reach it: every call takes one."""

    name: str  # owner/name
    token: str
    api_url: str = "https://api.github.com"
    client: httpx.Client | None = None  # the caller's (tests); else one per call, closed after

    @property
    def api(self) -> str:
        return self.api_url.rstrip("/")

    def url(self, path: str) -> str:
        """The URL of `path` under this repository (`/issues/7/comments`)."""
        return f"{self.api}/repos/{self.name}{path}"

    @contextmanager
    def session(self, timeout: float = 30.0) -> Iterator[httpx.Client]:
        """The HTTP client for one call; transport errors become GitHubError naming their
        kind (never the request, whose headers carry the token)."""
        http = self.client or httpx.Client(timeout=timeout)
        try:
            yield http
        except httpx.HTTPError as err:
            raise GitHubError(f"GitHub API request failed: {type(err).__name__}") from None
        finally:
            if self.client is None:
                http.close()


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


def upsert_comment(repo: GitHubRepo, pr_number: int, body: str, marker: str = MARKER) -> int:
    """Update the PR's marked comment in place, or create it; returns the comment id.

    One comment per PR, edited on every push, keeps the conversation readable.
    """
    headers = _headers(repo.token)
    with repo.session() as http:
        comments = _list_all(http, repo.api, repo.url(f"/issues/{pr_number}/comments"),
                             repo.token, {})
        found = _pick(comments, marker)
        if found is not None:
            resp = _check(http.patch(repo.url(f"/issues/comments/{found['id']}"),
                                     json={"body": body}, headers=headers))
        else:
            resp = _check(http.post(repo.url(f"/issues/{pr_number}/comments"),
                                    json={"body": body}, headers=headers))
        return int(resp.json()["id"])


def sync_drift_issue(repo: GitHubRepo, exit_code: int, report: str,
                     run_url: str | None = None) -> str:
    """Keep one open issue for drift, as tfaction does: opened (or its body updated with the
    latest plan) when the nightly plan exits 2, closed with a comment when it exits 0, left
    alone on an error (exit 1: nothing is known). Returns what was done, for the log."""
    headers = _headers(repo.token)
    with repo.session() as http:
        issues = [i for i in _list_all(http, repo.api, repo.url("/issues"), repo.token,
                                       {"state": "open"})
                  if "pull_request" not in i]
        found = _pick(issues, DRIFT_MARKER)
        if exit_code == 2:
            body = build_comment(report, exit_code=2, run_url=run_url, validate_only=False,
                                 marker=DRIFT_MARKER, heading=("### Reconciler drift",
                                                               DRIFT_HEADLINE))
            if found is not None:
                _check(http.patch(repo.url(f"/issues/{found['number']}"),
                                  json={"body": body}, headers=headers))
                return f"updated drift issue #{found['number']}"
            resp = _check(http.post(repo.url("/issues"),
                                    json={"title": DRIFT_TITLE, "body": body}, headers=headers))
            return f"opened drift issue #{resp.json()['number']}"
        if exit_code == 0 and found is not None:
            where = f" ([run]({run_url}))" if run_url else ""
            _check(http.post(repo.url(f"/issues/{found['number']}/comments"),
                             json={"body": f"✅ No drift any more{where}: closing."},
                             headers=headers))
            _check(http.patch(repo.url(f"/issues/{found['number']}"),
                              json={"state": "closed", "state_reason": "completed"},
                              headers=headers))
            return f"closed drift issue #{found['number']}"
        return "no drift issue to change" if exit_code == 0 else "plan failed: issue left as is"


def _get(http: httpx.Client, repo: GitHubRepo, path: str,
         params: dict[str, Any] | None = None) -> Any:
    return _check(http.get(repo.url(path), params=params, headers=_headers(repo.token))).json()


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


def fetch_reviewed_plan(repo: GitHubRepo, sha: str, dest: Path) -> tuple[int | None, str]:
    """Find the plan reviewed in the pull request merged as `sha` and write it to `dest`.

    The plan is the `plan.json` in the `reconciler-plan` artifact of the newest successful
    `plan` workflow run for the pull request's head commit: exactly what the sticky comment
    showed. Returns (pull request number or None, what happened, in words); `dest` is
    written only when the plan was found.
    """
    with repo.session(timeout=60.0) as http:
        pulls = _get(http, repo, f"/commits/{sha}/pulls")
        merged = [p for p in pulls if p.get("merged_at")]
        if not merged:
            return None, f"no merged pull request for commit {sha[:12]}"
        pr = merged[0]
        number, head = int(pr["number"]), str(pr["head"]["sha"])
        runs = _get(http, repo, f"/actions/workflows/{PLAN_WORKFLOW}/runs",
                    {"head_sha": head, "event": "pull_request", "status": "success",
                     "per_page": 10})
        found = runs.get("workflow_runs") or []
        if not found:
            return number, f"no successful plan run for #{number} at {head[:12]}"
        run_id = int(found[0]["id"])
        artifacts = _get(http, repo, f"/actions/runs/{run_id}/artifacts",
                         {"name": PLAN_ARTIFACT})
        usable = [a for a in artifacts.get("artifacts") or [] if not a.get("expired")]
        if not usable:
            return number, f"plan run {run_id} of #{number} has no {PLAN_ARTIFACT} artifact " \
                           "(expired?)"
        data = _download_artifact(http, usable[0]["archive_download_url"], repo.api, repo.token)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                plan = archive.read("plan.json")
        except (zipfile.BadZipFile, KeyError):
            return number, f"the {PLAN_ARTIFACT} artifact of run {run_id} holds no plan.json " \
                           "(the plan had errors?)"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(plan)
        return number, f"the plan reviewed in #{number} (plan run {run_id})"
