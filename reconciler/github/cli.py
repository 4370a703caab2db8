"""`python -m reconciler.github COMMAND`: the click commands the workflows call; each parses
its options, calls one function of comment/client/workflow and prints or writes the result."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_BUG, ReconcilerError, bug_report
from ..redaction import redact
from .client import GitHubError, GitHubRepo, fetch_reviewed_plan, sync_drift_issue, upsert_comment
from .comment import STALE_MARKER, SUMMARY_LIMIT, build_comment
from .workflow import (
    MAX_MATRIX_JOBS,
    append_summary,
    apply_reviewed,
    build_command,
    build_matrix,
    parse_sections,
    plan_scope,
    pr_from_event,
    run_reconcile,
    sections_from_plan,
    set_output,
    this_run_url,
)


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
    run_url = run_url or this_run_url()
    text = plan_file.read_text(encoding="utf-8") if plan_file.exists() else ""
    number, sha = pr_from_event(os.environ.get("GITHUB_EVENT_PATH"))
    kwargs: dict[str, Any] = {
        "exit_code": exit_code, "run_url": run_url, "validate_only": validate_only, "commit": sha
    }
    if summary:
        append_summary(build_comment(text, limit=SUMMARY_LIMIT, **kwargs))
    repo = _repo()
    body = build_comment(text, **kwargs)
    try:
        cid = upsert_comment(repo, number, body)
    except GitHubError as err:
        if validate_only and "HTTP 403" in str(err):
            # Fork PRs get a read-only token; the job summary carries the result instead.
            click.echo(f"::warning::no PR comment (read-only token on a fork PR): {err}")
            return
        raise click.ClickException(str(err)) from None
    click.echo(f"comment {cid} on {repo.name}#{number}")


def _repo() -> GitHubRepo:
    name, token = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("GITHUB_TOKEN")
    if not name or not token:
        raise click.ClickException("GITHUB_REPOSITORY and GITHUB_TOKEN must be set")
    return GitHubRepo(name, token, os.environ.get("GITHUB_API_URL", "https://api.github.com"))


@cli.command("reviewed-plan")
@click.option("--sha", required=True, help="The merge commit on the default branch.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def reviewed_plan_cmd(sha: str, out: Path) -> None:
    """Fetch the plan reviewed in the pull request merged as SHA (outputs found, pr, reason)."""
    try:
        number, what = fetch_reviewed_plan(_repo(), sha, out)
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
        try:
            upsert_comment(_repo(), pr, body, marker=f"{STALE_MARKER} {' '.join(ids)} -->")
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
    repo = _repo()
    text = plan_file.read_text(encoding="utf-8") if plan_file.exists() else ""
    try:
        click.echo(sync_drift_issue(repo, exit_code, text, run_url=this_run_url()))
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
    """The workflows' entry point. A ReconcilerError is one `Error:` line, exit 1; anything
    else is a bug: its traceback and a line asking to report it, exit 3."""
    try:
        cli.main(args=list(argv) if argv is not None else None,
                 prog_name="python -m reconciler.github")
    except ReconcilerError as err:
        click.echo(f"Error: {' '.join(redact(str(err)).split())}", err=True)
        sys.exit(1)
    except Exception:
        click.echo(redact(bug_report()), err=True)
        sys.exit(EXIT_BUG)
