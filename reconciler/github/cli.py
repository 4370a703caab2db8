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
from .release import ReleaseError, check_release
from .workflow import (
    MAX_MATRIX_JOBS,
    ReviewedPlan,
    append_summary,
    apply_assigned,
    apply_reviewed,
    assign_plans,
    build_command,
    build_matrix,
    last_applied_scope,
    parse_sections,
    plan_scope,
    plan_sections,
    pr_from_event,
    run_reconcile,
    section_work,
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


@cli.command("apply-reviewed")
@click.option("--plan-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The reviewed plan of all these sections.")
@click.option("--assignment", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Or: reviewed-plans' assignment (each section's plan).")
@click.option("--sections", required=True, help='This job\'s section ids ("11 12").')
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--pr", type=int, default=None, help="The merged pull request to tell.")
@click.option("--missing-reason", default="", help="Why there is no plan file, if there is none.")
@click.option("--replan-on-stale", is_flag=True, envvar="RECONCILER_REPLAN_ON_STALE",
              help="Apply a fresh plan when the reviewed one is stale (default: fail).")
@click.option("--max-dub-minutes", default="", help="Passed to reconcile --apply.")
@click.option("--reconcile", "reconcile_cmd", default="reconcile", hidden=True)
def apply_reviewed_cmd(plan_file: Path | None, assignment: Path | None, sections: str,
                       report: Path, pr: int | None, missing_reason: str, replan_on_stale: bool,
                       max_dub_minutes: str, reconcile_cmd: str) -> None:
    """Apply the merged pull requests' reviewed plans to these sections (see docs/github.md)."""
    if (plan_file is None) == (assignment is None):
        raise click.UsageError("give exactly one of --plan-file or --assignment")
    try:
        ids = parse_sections(sections)
        extra = ["--max-dub-minutes", str(float(max_dub_minutes))] if max_dub_minutes else []
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    def post(number: int, body: str) -> None:
        try:
            upsert_comment(_repo(), number, body,
                           marker=f"{STALE_MARKER} {' '.join(ids)} -->")
        except GitHubError as err:  # the job summary still has it
            click.echo(f"::warning::could not comment on #{number}: {err}", err=True)

    reconcile = shlex.split(reconcile_cmd)
    if assignment is None:
        sys.exit(apply_reviewed(reconcile, plan_file, ids, report=report,
                                missing_reason=missing_reason, replan_on_stale=replan_on_stale,
                                extra=extra, post=(lambda body: post(pr, body)) if pr else None))
    try:
        assigned = json.loads(assignment.read_text(encoding="utf-8"))["sections"]
        sys.exit(apply_assigned(reconcile, assigned, ids, report=report,
                                replan_on_stale=replan_on_stale, extra=extra, post=post))
    except (ValueError, KeyError, TypeError) as err:
        raise click.ClickException(f"{assignment}: {err}") from None


@cli.command("reviewed-plans")
@click.option("--sha", required=True, help="The pushed merge commit on the default branch.")
@click.option("--last-applied", default="",
              help="The recorded last applied commit (scope's output; empty: none usable).")
@click.option("--fresh", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="This run's `reconcile --plan --format json` output.")
@click.option("--scoped/--full", default=True,
              help="Whether the fresh plan covers only what changed since the last applied "
                   "commit (--changed-since) or everything.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--max-merges", type=click.IntRange(1, 100), default=30, show_default=True,
              help="Merges since the last applied commit whose reviewed plans are fetched.")
def reviewed_plans_cmd(sha: str, last_applied: str, fresh: Path, scoped: bool, out_dir: Path,
                       max_merges: int) -> None:
    """Fetch the reviewed plans of the merges since the last applied commit and write which one
    applies each section (OUT_DIR/assignment.json; outputs found, pr, reason, count)."""
    from .. import repository  # here: the glue's other commands start in 0.4 s, not 1.3 s

    merges = repository.merges_since(last_applied, sha, max_merges) if last_applied else []
    if sha not in merges:
        merges.insert(0, sha)
    repo = _repo()
    reviewed: list[ReviewedPlan] = []
    for commit in merges:
        dest = out_dir / f"{commit}.json"
        try:
            number, what = fetch_reviewed_plan(repo, commit, dest)
        except GitHubError as err:
            number, what = None, str(err)
        reviewed.append(ReviewedPlan(commit, number, dest if dest.is_file() else None, what))
        click.echo(f"reviewed plan of {commit[:12]}: {what}", err=True)
    try:
        assigned = assign_plans(json.loads(fresh.read_text(encoding="utf-8")), reviewed, scoped)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise click.ClickException(f"cannot assign plans: {err}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "assignment.json").write_text(json.dumps({"sections": assigned}, indent=1),
                                             encoding="utf-8")
    head = reviewed[0]
    set_output("found", "true" if head.path else "false")
    set_output("pr", str(head.pr or ""))
    set_output("reason", head.reason)
    set_output("count", str(len(assigned)))
    caught_up = [sid for sid, entry in assigned.items()
                 if entry["plan"] and entry["plan"] != str(head.path)]
    if caught_up:
        click.echo(f"catching up sections {' '.join(caught_up)} from earlier merges", err=True)


@cli.command("release-check")
@click.option("--tag", required=True, help="The pushed tag (vX.Y.Z).")
@click.option("--changelog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("CHANGELOG.md"), show_default=True)
@click.option("--notes", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the changelog entry (the release's body).")
def release_check_cmd(tag: str, changelog: Path, notes: Path) -> None:
    """Check that TAG, the package's version and CHANGELOG.md's newest entry agree (outputs
    version, major-tag, move-major)."""
    from .. import __version__, repository

    try:
        release = check_release(tag, __version__, changelog.read_text(encoding="utf-8"),
                                repository.release_tags())
    except ReleaseError as err:
        raise click.ClickException(str(err)) from None
    notes.write_text(release.notes + "\n", encoding="utf-8")
    set_output("version", release.version)
    set_output("major-tag", release.major_tag)
    set_output("move-major", "true" if release.move_major else "false")
    moves = "moves" if release.move_major else "stays (a newer release or a pre-release)"
    click.echo(f"release {release.version}: {release.major_tag} {moves}")


@cli.command("record-applied")
@click.option("--commit", required=True, help="The commit whose plan this run applied.")
@click.option("--full", is_flag=True, help="The run applied a full plan (scope's `full`).")
@click.option("--store", "store_url", default=None, help="Default: s3://$AWS_BUCKET_NAME.")
def record_applied_cmd(commit: str, full: bool, store_url: str | None) -> None:
    """Record COMMIT as the last applied one in the bucket, only forwards (see docs/github.md)."""
    from .. import engine, repository

    try:
        click.echo(repository.record_applied(commit, full=full, run_url=this_run_url(),
                                             store_url=store_url))
    except ValueError as err:  # no store named (Settings.from_env)
        raise click.UsageError(str(err)) from None
    except engine.StoreError as err:
        raise click.ClickException(str(err)) from None


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
@click.option(
    "--assignment", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Or: the sections of reviewed-plans' assignment.json.",
)
@click.option("--chunks", type=click.IntRange(1, MAX_MATRIX_JOBS), default=4, show_default=True)
def matrix_cmd(sections: str | None, plan_json: Path | None, assignment: Path | None,
               chunks: int) -> None:
    """Print a JSON job matrix balanced by work (also as step outputs `matrix` and `count`)."""
    if sum(x is not None for x in (sections, plan_json, assignment)) != 1:
        raise click.UsageError("give exactly one of --sections, --plan-json or --assignment")
    try:
        work: dict[str, float] = {}
        if plan_json:
            found = plan_sections(json.loads(plan_json.read_text(encoding="utf-8")))
            work = {sid: section_work(section) for sid, section in found.items()}
        elif assignment:
            entries = json.loads(assignment.read_text(encoding="utf-8"))["sections"]
            work = {sid: float(entry["minutes"]) for sid, entry in entries.items()}
        ids = list(work) if work or sections is None else parse_sections(sections)
        matrix = build_matrix(ids, chunks, work)
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
@click.option("--last-applied", is_flag=True,
              help="Diff against the last applied commit recorded in the bucket (else --base).")
@click.option("--store", "store_url", default=None, help="Default: s3://$AWS_BUCKET_NAME.")
def scope_cmd(base: str, last_applied: bool, store_url: str | None) -> None:
    """Decide between --changed-since REF and a full plan (outputs `changed-since`, `full`,
    `last-applied`)."""
    if last_applied:
        from .. import engine, repository

        try:
            recorded = repository.last_applied_commit(store_url)
        except ValueError as err:  # no store named (Settings.from_env)
            raise click.UsageError(str(err)) from None
        except engine.StoreError as err:
            raise click.ClickException(str(err)) from None
        ref, since, why = last_applied_scope(recorded, base)
    else:
        (ref, why), since = plan_scope(base), None
    set_output("changed-since", ref or "")
    set_output("full", "false" if ref else "true")
    set_output("last-applied", since or "")
    click.echo(f"plan scope: {why}", err=True)
    if ref is None:
        click.echo(f"::notice::full plan: {why}", err=True)
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
