"""`reconcile`: a thin click skin over reconciler.engine.

    reconcile plan  [PATHS] [--section ID]...   exit 0 no changes, 2 changes pending, 1 error
    reconcile apply [PATHS] [--section ID]...   exit 0 converged, 1 otherwise
    (also spelled `reconcile --plan` / `reconcile --apply`: the default command `run`)
    reconcile validate | show | destroy | demo | verify | preview | unlock | serve

Machine-readable output goes to stdout alone; progress, the apply prompt (on a terminal only)
and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import click

from . import __version__, engine
from .cli_support import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    MainGroup,
    echo_view,
    fail,
    load_or_exit,
    logging_options,
    manifests_or_exit,
    needs_approval,
    paths_argument,
    progress_tracker,
    section_option,
    store_option,
)
from .errors import ReconcilerError, UsageError
from .plan import Plan, PlanOptions
from .render import OUTCOME_VIEWS, PLAN_VIEWS

DISTRIBUTION = "lingoost-reconciler"
APPROVE_PROMPT = "Apply these changes? Only 'yes' will be accepted"
DESTROY_PROMPT = "Delete these sections? Only 'yes' will be accepted"


class Cancelled(ReconcilerError):
    """The user did not answer 'yes' to the apply prompt."""


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")  # = the package metadata's version
def main() -> None:
    """Keep multi-language CMAF HLS lectures in S3/CloudFront exactly as the manifests say.

    \b
    reconcile plan  [PATHS...]   show what would change (exit 0 none, 2 pending, 1 error)
    reconcile apply [PATHS...]   make it so (exit 0 converged, 1 otherwise)
    (or `reconcile --plan`, `reconcile --apply`). PATHS are manifest files or folders
    (default: the repository's manifests/). See `reconcile plan --help`.
    """


def run_options(command):
    """The options `reconcile plan`, `reconcile apply` and the `--plan`/`--apply` flags share."""
    for option in reversed([
        paths_argument,
        section_option,
        store_option,
        click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
                     default="text", show_default=True),
        click.option("--changed-since", metavar="REF",
                     help="Only manifests changed since this git ref (deleted ones included)."),
        click.option("--jobs", type=click.IntRange(1, 64), default=8, show_default=True,
                     help="Parallel uploads (and S3 connection pool size)."),
        click.option("--dub-concurrency", type=click.IntRange(1, 32), default=2,
                     show_default=True, help="Dubs in progress at once (ElevenLabs plan limit)."),
        click.option("--max-dub-minutes", type=float, default=None,
                     help="Refuse to apply when new dubbing would bill more minutes."),
        click.option("--prune", is_flag=True,
                     help="Delete objects of languages no manifest lists."),
        click.option("--allow-mass-prune", "--allow-empty", "allow_empty", is_flag=True,
                     help="Allow a prune to delete whole sections beyond 10% of the catalogue "
                          "(and more than one), or every language of a section (--allow-empty "
                          "is the same option's older name)."),
        click.option("--replace", "replace", multiple=True, metavar="S/WHAT",
                     help="Rebuild this rendition although it is up to date (repeatable): "
                          "S/video (and with it every language), S/LANGUAGE (a dubbed one is "
                          "dubbed anew: billed) or S/subtitles/LANGUAGE."),
        click.option("--deep", is_flag=True,
                     help="HEAD every object instead of trusting ones sealed by their playlist."),
        click.option("--lock-ttl", type=click.FloatRange(5), default=300, show_default=True,
                     metavar="SECONDS", help="Length of each section's lease (renewed while "
                                             "working)."),
        click.option("--lock-timeout", type=click.FloatRange(0), default=600,
                     show_default=True, metavar="SECONDS",
                     help="How long to wait for a section another run holds."),
        click.option("--invalidation-timeout", type=click.FloatRange(0), default=300,
                     show_default=True, metavar="SECONDS",
                     help="How long to wait for a CloudFront distribution with too many "
                          "invalidations in progress; then the paths are kept pending for the "
                          "next apply."),
    ]):
        command = option(command)
    return command


out_option = click.option(
    "--out", type=click.Path(path_type=Path), default=None,
    help="Save the plan to apply later with `reconcile apply FILE`.")
auto_approve_option = click.option(
    "--auto-approve", is_flag=True,
    help="On a terminal, apply without asking (pruning and dubbing are still confirmed). "
         "Without a terminal an apply never asks.")


@main.command("run")
@click.option("--plan", "plan_flag", is_flag=True, help="Show the changes; write nothing.")
@click.option("--apply", "apply_flag", is_flag=True,
              help="Make the changes (PATHS may be one saved plan file instead; --section "
                   "then narrows it to some of the sections it covers).")
@run_options
@out_option
@auto_approve_option
@logging_options
def run(plan_flag: bool, apply_flag: bool, **options) -> None:
    """Plan or apply (the default command: `reconcile --plan`, `reconcile --apply`)."""
    if plan_flag and apply_flag:
        fail("--plan and --apply cannot be used together: plan first (`reconcile plan "
                    "--out FILE`), then apply that plan (`reconcile apply FILE`)")
    if not (plan_flag or apply_flag):
        fail("choose --plan or --apply (or `reconcile plan` / `reconcile apply`)")
    if options["out"] and not plan_flag:
        fail("--out goes with --plan")
    plan_or_apply("plan" if plan_flag else "apply", **options)


@main.command("plan")
@run_options
@out_option
@logging_options
def plan_cmd(**options) -> None:
    """Show what would change; write nothing (= `reconcile --plan`): exit 0 nothing to change,
    2 changes pending, 1 error."""
    plan_or_apply("plan", auto_approve=False, **options)


@main.command("apply")
@run_options
@auto_approve_option
@logging_options
def apply_cmd(**options) -> None:
    """Make the changes (= `reconcile --apply`; PATHS may be one saved plan file): exit 0
    converged, 1 otherwise."""
    plan_or_apply("apply", out=None, **options)


def plan_or_apply(mode: str, paths, sections, store_url, fmt, out, changed_since, jobs,
                  dub_concurrency, max_dub_minutes, prune, allow_empty, replace, deep,
                  lock_ttl, lock_timeout, invalidation_timeout, auto_approve) -> NoReturn:
    """The one implementation behind `plan`/`apply` and `--plan`/`--apply`; exits."""
    saved = mode == "apply" and len(paths) == 1 and engine.is_saved_plan(paths[0])
    if saved and (changed_since or replace):
        fail("a saved plan already fixes the manifests, sections and replacements")
    if mode == "apply" and replace and not saved and not auto_approve and not sys.stdin.isatty():
        fail("--replace asks for confirmation on a terminal; without one, pass --auto-approve "
             "(or apply a saved plan made with `reconcile plan --replace ... --out FILE`)")
    with manifests_or_exit():
        scope = (engine.saved_scope(paths[0], list(sections), store_url=store_url) if saved
                 else engine.scope(list(paths), list(sections), changed_since=changed_since,
                                   store_url=store_url,
                                   options=PlanOptions(prune=prune, allow_empty=allow_empty,
                                                       replace=replace)))
    tracker = progress_tracker()
    try:
        settings = engine.Settings.from_env(
            scope.store_url, workers=jobs, dub_concurrency=dub_concurrency,
            max_dub_minutes=max_dub_minutes, deep=deep, lock_ttl=lock_ttl,
            lock_timeout=lock_timeout, invalidation_timeout=invalidation_timeout,
        )
        rec = engine.Reconciler(settings, tracker=tracker)
        if mode == "plan":
            plan = rec.plan_scope(scope, out)
            echo_view(PLAN_VIEWS[fmt](plan), fmt)
            sys.exit(EXIT_ERROR if plan.has_errors else EXIT_CHANGES if plan.has_changes
                     else EXIT_OK)

        def show(plan) -> None:
            """The plan on stderr; on a terminal, ask before anything is done (under the
            sections' locks, so what is approved is what gets applied)."""
            ask = sys.stdin.isatty() and needs_approval(plan, auto_approve or saved)
            if fmt == "text" or ask:
                echo_view(PLAN_VIEWS["text"](plan), "text", err=True)
            if ask and click.prompt(APPROVE_PROMPT, default="", show_default=False,
                                    err=True) != "yes":
                raise Cancelled

        try:
            outcome = rec.apply_scope(scope, on_plan=show)
        finally:
            tracker.close()  # the last beat, and any section's group still open
    except Cancelled:
        fail("apply cancelled; nothing was changed")
    echo_view(OUTCOME_VIEWS[fmt](outcome), fmt)
    sys.exit(EXIT_OK if outcome.ok else EXIT_ERROR)


@main.command("destroy")
@click.option("--section", "sections", multiple=True, type=int, required=True, metavar="ID",
              help="A section to take down (repeatable).")
@store_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True)
@click.option("--auto-approve", is_flag=True,
              help="Delete without asking (required where there is no terminal).")
@logging_options
def destroy_cmd(sections, store_url, fmt, auto_approve) -> None:
    """Take sections down: shows every object under each section's folder, asks on a terminal,
    deletes them (master first) and sends one invalidation (exit 0 done, 1 otherwise). The
    manifests are not read: remove the section's manifest too, or the next apply republishes
    it."""
    if not auto_approve and not sys.stdin.isatty():
        fail("destroy asks for confirmation on a terminal; without one, pass --auto-approve")

    def confirm(plan: Plan) -> None:
        echo_view(PLAN_VIEWS["text"](plan), "text", err=True)
        if plan.has_changes and not auto_approve and click.prompt(
                DESTROY_PROMPT, default="", show_default=False, err=True) != "yes":
            raise Cancelled

    tracker = progress_tracker()
    try:
        rec = engine.Reconciler(engine.Settings.from_env(store_url), tracker=tracker)
        outcome = rec.destroy(list(sections), on_plan=confirm)
    except Cancelled:
        fail("destroy cancelled; nothing was deleted")
    finally:
        tracker.close()
    echo_view(OUTCOME_VIEWS[fmt](outcome), fmt)
    sys.exit(EXIT_OK if outcome.ok else EXIT_ERROR)


@main.command("import")
@paths_argument
@section_option
@store_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True)
@logging_options
def import_cmd(paths, sections, store_url, fmt) -> None:
    """Adopt sections another tool (the old scripts) published: each rendition is checked
    against the manifest (durations, codecs, resolution, frame rate, languages) and stamped,
    headers and playlists fixed, master written from what is there. Nothing is encoded, dubbed
    or deleted: what cannot be adopted is listed with why and left as it is (exit 0 all
    adopted, 1 otherwise; `reconcile apply` rebuilds the rest)."""
    with manifests_or_exit():
        scope = engine.scope(list(paths), list(sections), store_url=store_url,
                             options=PlanOptions(adopt_only=True))
    tracker = progress_tracker()
    try:
        rec = engine.Reconciler(engine.Settings.from_env(scope.store_url), tracker=tracker)
        outcome = rec.apply_scope(scope, on_plan=lambda plan: echo_view(
            PLAN_VIEWS["text"](plan), "text", err=True) if fmt == "text" else None)
    finally:
        tracker.close()
    echo_view(OUTCOME_VIEWS[fmt](outcome), fmt)
    if fmt == "text":
        for sp in outcome.plan.sections:
            for problem in sp.errors:
                click.echo(f"could not import section {sp.section_id}: {problem}")
    sys.exit(EXIT_OK if outcome.ok else EXIT_ERROR)


def reader(store_url: str | None) -> engine.Reconciler:
    """A Reconciler for the read-only commands (status, state show, locks)."""
    return engine.Reconciler(engine.Settings.from_env(store_url))


view_format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]),
                                  default="text", show_default=True)


@main.command("status")
@paths_argument
@section_option
@store_option
@view_format_option
@logging_options
def status_cmd(paths, sections, store_url, fmt) -> None:
    """The section x language board: published, missing, drifted, dubbing, pending
    invalidation or locked, from the same observation as `reconcile plan` (read-only; exit 0,
    1 on an error)."""
    from .status import board_json, board_text

    with manifests_or_exit():
        scope = engine.scope(list(paths), list(sections), store_url=store_url)
        board = reader(scope.store_url).status(scope)
    echo_view((board_json if fmt == "json" else board_text)(board), fmt)


@main.group("state")
def state_group() -> None:
    """Read what the store holds (read-only)."""


@state_group.command("show")
@click.argument("section_id", type=int)
@store_option
@view_format_option
@logging_options
def state_show_cmd(section_id, store_url, fmt) -> None:
    """One section's objects (with their metadata: the stamps), dub cache and job records,
    and lock holder, read in full from the store (no manifest needed)."""
    from .status import section_state_json, section_state_text

    state = reader(store_url).section_state(section_id)
    view = section_state_json if fmt == "json" else section_state_text
    echo_view(view(state, time.time()), fmt)


@main.command("locks")
@store_option
@view_format_option
@logging_options
def locks_cmd(store_url, fmt) -> None:
    """The sections' leases in the bucket: holder, operation and expiry (an expired one is
    left by a run that died: `reconcile unlock` removes it)."""
    from .status import locks_json, locks_text

    leases = reader(store_url).leases()
    echo_view((locks_json if fmt == "json" else locks_text)(leases, time.time()), fmt)


@main.command("show")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True)
@logging_options
def show_cmd(plan_file, fmt) -> None:
    """Show a saved plan (`reconcile --plan --out FILE`) without reading the store."""
    echo_view(PLAN_VIEWS[fmt](engine.read_saved_plan(plan_file).plan), fmt)


@main.command()
@paths_argument
@logging_options
def validate(paths) -> None:
    """Validate manifests and that their relative input files exist (no store access): exit 0
    valid, 1 otherwise."""
    sections = load_or_exit(paths, (), check_files=True)
    click.echo(f"{len(sections)} manifest(s) valid: sections "
               f"{', '.join(str(s.section_id) for s in sections)}")


@main.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Where to put sample media, manifests and the store.")
@logging_options
def demo(directory: Path) -> None:
    """The main job on the embedded default: sample media -> plan -> apply -> plan."""
    from .demo import run_demo

    # Called as .venv/bin/reconcile (scripts/demo.sh), the hint says so.
    program = sys.argv[0] if Path(sys.argv[0]).name == "reconcile" else "reconcile"
    sys.exit(run_demo(directory, echo=click.echo, program=program))


@main.command("verify")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--cdn", envvar="NEXT_PUBLIC_CDN_URL", metavar="URL",
              help="CDN base URL (default: $NEXT_PUBLIC_CDN_URL).")
@click.option("--origin", default="http://localhost:3000", show_default=True,
              help="Origin header sent, as the app's pages would.")
@section_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="markdown: the status board (section x language) for job summaries.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=16, show_default=True)
@logging_options
def verify_cmd(paths, cdn, origin, sections, fmt, concurrency) -> None:
    """Fetch everything a player would, through the CDN, and check it (exit 0 all pass, 1 not).

    Every section the manifests declare (or each --section) is checked: master, every playlist,
    init and segment; status, Content-Type, Cache-Control, CORS, and the HLS rules.
    """
    from .verify import render_text, to_json, verify

    if not cdn:
        fail("no CDN URL: pass --cdn URL or set NEXT_PUBLIC_CDN_URL")
    expected: dict[int, list[str]] = {}
    if paths or not sections:
        declared = load_or_exit(paths, sections)
        expected = {s.section_id: [lang.code for lang in s.languages] for s in declared}
    ids = list(sections) or sorted(expected)
    if not ids:
        fail("no sections to verify")
    report = verify(cdn, ids, origin=origin, expected_languages=expected or None,
                    concurrency=concurrency)
    if fmt == "markdown":
        from .board import from_verify, markdown

        click.echo(markdown(from_verify(report, expected)), nl=False)
    else:
        click.echo(render_text(report) if fmt == "text"
                   else json.dumps(to_json(report), indent=2))
    sys.exit(EXIT_OK if report.ok else EXIT_ERROR)


@main.command("preview")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@logging_options
def preview_cmd(store_url, host, port) -> None:
    """Serve a store over HTTP as CloudFront would (metadata headers, CORS, Range), with a
    player page at /player.html?section=ID."""
    from .preview import serve

    serve(engine.reachable_store(engine.Settings.from_env(store_url).store_url), host, port)


@main.command("unlock")
@click.argument("section_id", type=int)
@click.option("--lock-id", required=True, help="The id the lock error named.")
@click.option("--force", is_flag=True,
              help="Remove the lock even though it has not expired (its run may still work).")
@store_option
@logging_options
def unlock_cmd(section_id, lock_id, force, store_url) -> None:
    """Remove a section's lock left behind by a run that died (only with its exact id, and
    only once it expired unless --force)."""
    lease = engine.unlock(engine.Settings.from_env(store_url).store_url, section_id, lock_id,
                          force=force)
    click.echo(f"unlocked section {section_id}: removed lock {lease.lock_id} "
               f"({lease.operation}, {', '.join(f'{k} {v}' for k, v in lease.owner.items())})")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address; without RECONCILER_API_TOKEN only loopback is allowed.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--manifests", "manifests_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("manifests"), show_default=True,
              help="Folder of manifests the API reads and writes.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path(".reconciler-api"), show_default=True,
              help="Where the default job store (SQLite) lives.")
@click.option("--job-store", metavar="URL", envvar="RECONCILER_JOB_STORE", default=None,
              help="Where jobs are kept: sqlite:///ABSOLUTE/FILE (one host; default: "
                   "jobs.sqlite3 in --data-dir) or s3://BUCKET/PREFIX (shared by replicas) "
                   "[env RECONCILER_JOB_STORE].")
@click.option("--job-lease", type=click.FloatRange(1), default=None, metavar="S",
              envvar="RECONCILER_JOB_LEASE",
              help="Seconds a replica's hold on a running job lasts unrenewed (renewed every "
                   "third of it): another replica resumes a dead one's job after this "
                   "[default 300; env RECONCILER_JOB_LEASE].")
@click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True,
              help="Sections reconciled at once (one section's jobs always run in order).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve without RECONCILER_API_TOKEN (loopback only; local development).")
@click.option("--git-commit", is_flag=True,
              help="Commit each manifest the API changes to its git repository.")
@click.option("--git-push", metavar="REMOTE", envvar="RECONCILER_GIT_PUSH", default=None,
              help="Commit each manifest change and push it to REMOTE's copy of the branch "
                   "before it is applied (rebased and retried when the branch moved) "
                   "[env RECONCILER_GIT_PUSH].")
@click.option("--max-dub-minutes", type=click.FloatRange(0), default=None,
              envvar="RECONCILER_MAX_DUB_MINUTES", metavar="N",
              help="Per job: a job whose new dubbing would bill more minutes (or an unknown "
                   "number) fails before paying [env RECONCILER_MAX_DUB_MINUTES].")
@click.option("--header-timeout", type=click.FloatRange(0, min_open=True), default=10.0,
              show_default=True, envvar="RECONCILER_API_HEADER_TIMEOUT", metavar="S",
              help="Seconds a client may take to send a request's headers; then it is "
                   "disconnected [env RECONCILER_API_HEADER_TIMEOUT].")
@click.option("--body-timeout", type=click.FloatRange(0, min_open=True), default=30.0,
              show_default=True, envvar="RECONCILER_API_BODY_TIMEOUT", metavar="S",
              help="Seconds a client may take to send a request's body; then 408 "
                   "[env RECONCILER_API_BODY_TIMEOUT].")
@click.option("--max-connections", type=click.IntRange(1), default=100, show_default=True,
              envvar="RECONCILER_API_MAX_CONNECTIONS", metavar="N",
              help="Connections at once; a request beyond them is answered 503 "
                   "[env RECONCILER_API_MAX_CONNECTIONS].")
@store_option
@logging_options
def serve_cmd(host, port, manifests_dir, data_dir, job_store, job_lease, workers,
              insecure_no_auth, git_commit, git_push, max_dub_minutes, header_timeout,
              body_timeout, max_connections, store_url) -> None:
    """HTTP API for the web app: POST /api/dubbing records the request in the section's
    manifest and reconciles it with this same engine (OpenAPI at /openapi.json)."""
    try:
        from .api import ApiConfig, Limits, check_exposure, serve
    except ModuleNotFoundError as err:  # fastapi/uvicorn are the optional [api] extra
        fail(f"`reconcile serve` needs {err.name}: install {DISTRIBUTION}[api]")

    config = ApiConfig.from_env(manifests_dir, data_dir, store_url=store_url,
                                workers=workers, insecure_no_auth=insecure_no_auth,
                                git_commit=git_commit, git_push=git_push,
                                job_store=job_store, job_lease=job_lease,
                                max_dub_minutes=max_dub_minutes,
                                limits=Limits(header_timeout, body_timeout,
                                              max_connections))
    check_exposure(config, host)  # the token rule first: it is what most setups miss
    try:  # writable, or one line now
        config.data_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=config.data_dir).close()
    except OSError as err:
        raise UsageError(f"--data-dir {config.data_dir}: not writable "
                         f"({err.strerror or err})") from None
    engine.reachable_store(engine.Settings.from_env(config.store_url).store_url)
    serve(config, host, port)


def entry() -> None:
    """Console script: click's usage errors exit 1, since 2 means "changes pending"."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_ERROR)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    entry()
