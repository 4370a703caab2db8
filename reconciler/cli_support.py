"""What every `reconcile` command shares: the group that turns expected errors into one line
(and bugs into a traceback), output on stdout/stderr, the progress display, loading manifests,
and the common options. cli.py holds the commands."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from . import engine, logs
from .errors import EXIT_BUG, ReconcilerError, bug_report
from .manifest import InvalidManifests
from .plan import Change, Kind, Plan
from .progress import Heartbeat, LiveLines
from .redaction import redact
from .render import colorize

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


class MainGroup(click.Group):
    """`reconcile --plan …` runs the default command; `reconcile verify …` a subcommand.
    Every command's expected failures (errors.ReconcilerError: store unreachable, folder not
    writable, ...) end as one `Error:` line and exit 1; anything else is a bug: its traceback,
    a line asking to report it, exit 3 (EXIT_BUG)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Logging options may come first (`reconcile -v plan`): they belong to the command.
        lead = _leading_logging_options(args)
        args = [*args[len(lead):]]
        if not args or (args[0] not in self.commands
                        and args[0] not in ("--help", "-h", "--version")):
            args = ["run", *args]
        return super().parse_args(ctx, [args[0], *lead, *args[1:]])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ReconcilerError as err:
            fail(f"{err}" if str(err) else type(err).__name__)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own: usage errors and exits (entry() shows them)
        except Exception:
            report_bug()


def _leading_logging_options(args: list[str]) -> list[str]:
    """The -v/-vv/--verbose/--log-level/--log-format arguments at the start of `args`."""
    taken = 0
    while taken < len(args):
        arg = args[taken]
        if arg in ("--log-level", "--log-format"):
            taken += 2
        elif (arg == "--verbose" or arg.startswith(("--log-level=", "--log-format="))
              or (arg.startswith("-v") and set(arg[1:]) == {"v"})):
            taken += 1
        else:
            break
    return args[:taken]


# The bar of this process's terminal while one is shown: text for stderr goes through it, so the
# bar's redraw (cursor up N lines, clear) never lands on lines written past it.
_live: LiveLines | None = None


def progress_tracker() -> Heartbeat:
    """Progress on stderr: a bar redrawn in place when stderr is a terminal (log lines go
    above it), otherwise heartbeat lines (every RECONCILER_HEARTBEAT_SECONDS, default 30);
    step lines on an interactive terminal, grouped per section under GitHub Actions."""
    try:
        interval = float(os.environ.get("RECONCILER_HEARTBEAT_SECONDS") or 30)
    except ValueError:
        fail("RECONCILER_HEARTBEAT_SECONDS must be a number of seconds")
    global _live
    write, bar = stderr_line, None
    if (sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
            and not logs.writes_json()):
        bar = LiveLines(sys.stderr)
        logs.set_stream(bar)
        write = functools.partial(_write_line, bar)
    _live = bar  # this tracker's bar, or none: never an earlier tracker's stream
    return Heartbeat(write,
                     live=sys.stderr.isatty() and not os.environ.get("CI"),
                     github=os.environ.get("GITHUB_ACTIONS") == "true",
                     interval=max(0.05, interval), bar=bar)


def _write_line(bar: LiveLines, line: str) -> None:
    bar.write(line + "\n")


def use_color(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def echo_view(text: str, fmt: str, *, err: bool = False) -> None:
    """A rendered view on stdout (or stderr: one JSON log record with `--log-format json`);
    text views are coloured on a terminal."""
    if err and logs.emit_json(text.rstrip("\n"), logging.INFO):
        return
    color = fmt == "text" and use_color(sys.stderr if err else sys.stdout)
    if err and _live is not None:
        click.echo(colorize(text) if color else text, file=_live, nl=False, color=color)
        return
    click.echo(colorize(text) if color else text, err=err, nl=False, color=color)


def needs_approval(plan: Plan, approved: bool) -> bool:
    """On a terminal an apply is confirmed first, unless approved (--auto-approve, a saved
    plan); deleting objects or paying for dubbing is confirmed even then, except the new dub a
    `--replace` named (approved as destroy's deletions are)."""
    if not plan.has_changes:
        return False
    costly = plan.counts()["delete"] > 0 or any(
        a.change != Change.REPLACE for sp in plan.sections for a in sp.actions_of(Kind.DUB))
    return costly or not approved


def stderr_line(line: str, level: int = logging.INFO) -> None:
    """A line for the person or the log shipper: as it is, or with `--log-format json` as one
    JSON log record (so every line on stderr parses)."""
    if not logs.emit_json(line, level):
        click.echo(line, err=True)


def report_bug() -> NoReturn:
    """The exception being handled is a bug: its traceback (URLs redacted) and a line asking
    to report it on stderr, exit EXIT_BUG, so neither a person nor CI mistakes it for a
    mistake in the manifests or options."""
    stderr_line(redact(bug_report()), logging.CRITICAL)
    sys.exit(EXIT_BUG)


def fail(message: str) -> NoReturn:
    """One line on stderr (URLs redacted, line breaks flattened), exit 1."""
    stderr_line(f"Error: {' '.join(redact(message).split())}", logging.ERROR)
    sys.exit(EXIT_ERROR)


def logging_options(command):
    """-v/--log-level/--log-format on a command: request-level detail on stderr (AWS requests,
    HTTP requests, ffmpeg command lines), redacted; without them nothing is logged."""

    @click.option("-v", "--verbose", count=True,
                  help="Log requests and commands run (-v: info, -vv: debug).")
    @click.option("--log-level", type=click.Choice(logs.LEVELS), default=None,
                  envvar="RECONCILER_LOG_LEVEL",
                  help="Log at this level (overrides -v) [env RECONCILER_LOG_LEVEL].")
    @click.option("--log-format", type=click.Choice(logs.FORMATS), default=None,
                  envvar="RECONCILER_LOG_FORMAT",
                  help="json: one JSON object per stderr line, for log shippers "
                       "[env RECONCILER_LOG_FORMAT].")
    @functools.wraps(command)
    def with_logging(*args, verbose: int, log_level: str | None, log_format: str | None,
                     **kwargs):
        level = log_level or ("debug" if verbose > 1 else "info" if verbose else None)
        if level is None and log_format is None:
            return command(*args, **kwargs)
        logs.configure(level or "warning", log_format or "text", sys.stderr)
        try:
            return command(*args, **kwargs)
        finally:
            logs.unconfigure()

    return with_logging


@contextmanager
def manifests_or_exit() -> Iterator[None]:
    """Invalid manifests: every problem on its own line, then exit 1."""
    try:
        yield
    except InvalidManifests as err:
        for e in err.errors:
            stderr_line(f"Error: {e}", logging.ERROR)
        n = len(err.errors)
        stderr_line(f"{n} problem{'s' if n != 1 else ''} in manifests; nothing was read or "
                    "written.", logging.ERROR)
        sys.exit(EXIT_ERROR)


def load_or_exit(paths: tuple[Path, ...], sections: tuple[int, ...], *,
                 check_files: bool = False):
    with manifests_or_exit():
        return engine.load(list(paths) or [engine.default_manifests()], list(sections),
                           check_files=check_files)


paths_argument = click.argument(
    "paths", nargs=-1, type=click.Path(path_type=Path)
)
section_option = click.option(
    "--section", "sections", multiple=True, type=int, metavar="ID",
    help="Only this section (repeatable).",
)
store_option = click.option(
    "--store", "store_url", metavar="URL",
    help="s3://BUCKET[/PREFIX] or file:///ABSOLUTE/DIR (default: s3://$AWS_BUCKET_NAME).",
)
