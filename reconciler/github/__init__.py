"""GitHub Actions glue: the sticky PR plan comment, the apply matrix, step outputs and summaries.

The workflows in .github/workflows and the composite action.yml call `python -m reconciler.github`
so that their YAML stays declarative and the decisions (exit-code mapping, truncation, which
sections go to which job) are plain Python that the tests exercise.

The package, one room each:

    comment.py   the texts people read: PR plan comment, stale-plan and drift bodies, summaries
    client.py    GitHub REST: sticky comment, drift issue, the reviewed plan artifact
    workflow.py  matrix, plan scope (git), running reconcile, step outputs, applying a plan
    cli.py       the click commands the workflows call (python -m reconciler.github)
"""

from .cli import (
    cli,
    main,
)
from .client import (
    BOT_LOGIN,
    MAX_ARTIFACT_BYTES,
    PLAN_ARTIFACT,
    PLAN_WORKFLOW,
    GitHubError,
    fetch_reviewed_plan,
    sync_drift_issue,
    upsert_comment,
)
from .comment import (
    COLLAPSE_LINES,
    COMMENT_LIMIT,
    DRIFT_HEADLINE,
    DRIFT_MARKER,
    DRIFT_TITLE,
    MARKER,
    STALE_MARKER,
    SUMMARY_LIMIT,
    build_comment,
    fenced,
    fit_summary,
    plan_exit_ok,
    stale_comment,
    status_line,
    with_errors,
)
from .workflow import (
    ERROR_TAIL_LINES,
    FULL_PLAN_PATHS,
    MAX_MATRIX_JOBS,
    ZERO_SHA,
    append_summary,
    apply_reviewed,
    build_command,
    build_matrix,
    changed_files,
    parse_sections,
    plan_scope,
    pr_from_event,
    run_reconcile,
    sections_from_plan,
    set_output,
    this_run_url,
)

__all__ = [
    "BOT_LOGIN",
    "COLLAPSE_LINES",
    "COMMENT_LIMIT",
    "DRIFT_HEADLINE",
    "DRIFT_MARKER",
    "DRIFT_TITLE",
    "ERROR_TAIL_LINES",
    "FULL_PLAN_PATHS",
    "GitHubError",
    "MARKER",
    "MAX_ARTIFACT_BYTES",
    "MAX_MATRIX_JOBS",
    "PLAN_ARTIFACT",
    "PLAN_WORKFLOW",
    "STALE_MARKER",
    "SUMMARY_LIMIT",
    "ZERO_SHA",
    "append_summary",
    "apply_reviewed",
    "build_command",
    "build_comment",
    "build_matrix",
    "changed_files",
    "cli",
    "fenced",
    "fetch_reviewed_plan",
    "fit_summary",
    "main",
    "parse_sections",
    "plan_exit_ok",
    "plan_scope",
    "pr_from_event",
    "run_reconcile",
    "this_run_url",
    "sections_from_plan",
    "set_output",
    "stale_comment",
    "status_line",
    "sync_drift_issue",
    "upsert_comment",
    "with_errors",
]
