"""What the workflows write for people: the sticky PR plan comment, the stale-plan and drift
bodies, job-summary text, all cut to GitHub's size limits without breaking a code fence."""

from __future__ import annotations

import re
from collections.abc import Sequence

MARKER = "<!-- reconciler-plan -->"


STALE_MARKER = "<!-- reconciler-stale-plan"  # + the job's sections + " -->": one per apply job


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


_FENCE = re.compile(r"(`{3,}|~{3,})")


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


def fit_summary(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """`text` cut on a line boundary so the step summary upload is not rejected."""
    if len(text) <= limit:
        return text
    note = "\n\n⚠️ **Truncated** for the job summary; the full report is in the run's artifact.\n"
    cut = text[: limit - len(note)]
    cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else cut
    return cut + note


def fenced(text: str) -> str:
    if not text.strip():
        return ""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}\n"


def with_errors(text: str, errors: Sequence[str]) -> str:
    if not errors:
        return text
    block = fenced("\n".join(errors))
    lead = f"{text.rstrip()}\n\n" if text.strip() else ""
    return f"{lead}**Errors** (last {len(errors)} lines of stderr):\n\n{block}"


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
