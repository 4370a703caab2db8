"""GitHub Actions glue: the sticky PR plan comment, the apply matrix, step outputs and summaries.

The workflows in .github/workflows and the composite action.yml call `python -m reconciler.github`
so that their YAML stays declarative and the decisions (exit-code mapping, truncation, which
sections go to which job) are plain Python that the tests exercise.

The package, one room each:

    comment.py   the texts people read: PR plan comment, stale-plan and drift bodies, summaries
    client.py    GitHub REST (a GitHubRepo per call): sticky comment, drift issue, the reviewed
                 plan artifact
    workflow.py  matrix balanced by work, plan scope (repository.changed_files, the last applied
                 commit), which reviewed plan applies each section, running reconcile, step
                 outputs, applying a plan
    applied.py   the last applied commit, recorded in the bucket (only forwards)
    cli.py       the click commands the workflows call (python -m reconciler.github)

Re-exported here: what the workflows' tests call; everything else is imported from its room.
"""

from .cli import cli
from .client import (
    PLAN_ARTIFACT,
    GitHubError,
    GitHubRepo,
    fetch_reviewed_plan,
    sync_drift_issue,
    upsert_comment,
)
from .comment import (
    COLLAPSE_LINES,
    COMMENT_LIMIT,
    DRIFT_MARKER,
    DRIFT_TITLE,
    MARKER,
    STALE_MARKER,
    SUMMARY_LIMIT,
    build_comment,
    plan_exit_ok,
)
from .workflow import (
    MAX_MATRIX_JOBS,
    SECTION_OVERHEAD_MINUTES,
    UNKNOWN_MEDIA_MINUTES,
    ZERO_SHA,
    build_command,
    build_matrix,
    plan_scope,
    plan_sections,
    run_reconcile,
    section_work,
)

__all__ = [
    "COLLAPSE_LINES", "COMMENT_LIMIT", "DRIFT_MARKER", "DRIFT_TITLE", "GitHubError",
    "GitHubRepo", "MARKER", "MAX_MATRIX_JOBS", "PLAN_ARTIFACT", "STALE_MARKER",
    "SECTION_OVERHEAD_MINUTES", "SUMMARY_LIMIT", "UNKNOWN_MEDIA_MINUTES", "ZERO_SHA",
    "build_command", "build_comment", "build_matrix", "cli", "fetch_reviewed_plan",
    "plan_exit_ok", "plan_scope", "plan_sections", "run_reconcile", "section_work",
    "sync_drift_issue", "upsert_comment",
]
