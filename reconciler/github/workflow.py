"""Workflow plumbing: which sections go to which matrix job, what changed since a base
(plan scope), running `reconcile` and keeping its report, step outputs and summaries, and
applying a reviewed plan."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .comment import fenced, fit_summary, plan_exit_ok, stale_comment, status_line, with_errors

ERROR_TAIL_LINES = 40  # stderr lines shown with a failure (the full log stays in the run)


MAX_MATRIX_JOBS = 256  # GitHub's limit of jobs per matrix


ZERO_SHA = "0" * 40


# Changes here can alter any section's plan, so --changed-since would hide work.
FULL_PLAN_PATHS = ("schemas/", "reconciler/", "pyproject.toml")


_SECTION_ID = re.compile(r"[1-9][0-9]*")


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


# A packaging whose media length the plan does not know counts as this many minutes (a lecture
# of typical length); a plan knows a section's length only through its dubs' billable minutes.
UNKNOWN_MEDIA_MINUTES = 10.0
# Work every section with actions costs whatever they are (observe, metadata, master, uploads).
SECTION_OVERHEAD_MINUTES = 0.5
_ENCODES = ("package_video", "package_audio")


def plan_sections(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sections of a `--format json` plan (or a saved plan file) that have actions, by id,
    in the plan's order."""
    plan = plan.get("plan", plan) if plan.get("kind") == "reconciler-saved-plan" else plan
    found: dict[str, dict[str, Any]] = {}
    for section in plan.get("sections", []):
        if section.get("actions"):
            [sid] = parse_sections([section["sectionId"]])  # ids reach command lines
            found.setdefault(sid, section)
    return found


def sections_from_plan(plan: dict[str, Any]) -> list[str]:
    """Sections of a `--format json` plan (or a saved plan file) that have actions."""
    return list(plan_sections(plan))


def section_work(section: dict[str, Any]) -> float:
    """Minutes of work a plan section's actions mean: each dub's billable minutes plus the media
    minutes each video or audio packaging encodes (the section's length, known from its dubs,
    else UNKNOWN_MEDIA_MINUTES), plus a small overhead."""
    actions = section.get("actions") or []
    dubs = [float(a.get("minutes") or 0.0) for a in actions if a.get("type") == "dub"]
    length = max(dubs, default=0.0) or UNKNOWN_MEDIA_MINUTES
    encodes = sum(1 for a in actions if a.get("type") in _ENCODES)
    return round(SECTION_OVERHEAD_MINUTES + sum(dubs) + encodes * length, 4)


def build_matrix(sections: str | Iterable[str | int], chunks: int,
                 work: Mapping[str, float] | None = None) -> dict[str, Any]:
    """A `strategy.matrix` splitting sections into at most `chunks` jobs of about equal work.

    `work` (section id -> minutes; missing ids count 1) balances the jobs: the largest section
    first, each to the job with the least work so far (within 4/3 of the best split), so one
    long dubbed lecture does not share a job with half the others. Each section lands in
    exactly one job, so no two jobs of a run touch the same section; a job lists its sections
    in the given order.
    """
    if chunks < 1:
        raise ValueError("chunks must be >= 1")
    ids = parse_sections(sections)
    n = min(chunks, len(ids), MAX_MATRIX_JOBS)
    weight = {sid: float((work or {}).get(sid, 1.0)) for sid in ids}
    totals = [0.0] * n
    members: list[list[str]] = [[] for _ in range(n)]
    for sid in sorted(ids, key=lambda sid: -weight[sid]):  # stable: ties keep the given order
        job = min(range(n), key=lambda j: (totals[j], j))
        totals[job] += weight[sid]
        members[job].append(sid)
    position = {sid: i for i, sid in enumerate(ids)}
    include: list[dict[str, Any]] = []
    for i, part in enumerate(members):
        part.sort(key=position.__getitem__)
        include.append(
            {
                "chunk": i + 1,
                "name": " ".join(part) if len(part) <= 3 else f"{part[0]}…{part[-1]} ({len(part)})",
                "sections": " ".join(part),
                "minutes": round(totals[i], 1),
            }
        )
    return {"include": include}


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


def append_summary(text: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY, or print when run locally."""
    text = fit_summary(text)
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        click.echo(text)
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def this_run_url() -> str | None:
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def changed_files(base: str, cwd: Path | None = None) -> list[str] | None:
    """Paths changed between `base` and HEAD, or None when `base` is not a usable commit."""
    if not base or base == ZERO_SHA:  # a push that created the branch: no before-commit
        return None
    from .. import repository  # here: the glue's other commands start in 0.4 s, not 1.3 s

    return repository.changed_files(base, cwd)


def plan_scope(base: str, cwd: Path | None = None) -> tuple[str | None, str]:
    """(--changed-since ref or None for a full plan, why), from what changed since `base`."""
    files = changed_files(base, cwd)
    if files is None:
        return None, f"full: base {base or '(none)'!r} is not a known commit"
    code = [f for f in files if f == "pyproject.toml" or f.startswith(FULL_PLAN_PATHS)]
    if code:
        return None, f"full: reconciler inputs changed ({', '.join(code[:5])})"
    return base, f"changed since {base}"


def last_applied_scope(recorded: str | None, base: str,
                       cwd: Path | None = None) -> tuple[str | None, str | None, str]:
    """(--changed-since ref or None for a full plan, the recorded commit the run catches up
    from or None, why): everything changed since the last applied commit, so the merges of a
    cancelled run are applied too. Without a record: what changed since `base` (the push's)."""
    from .. import repository  # here: the glue's other commands start in 0.4 s, not 1.3 s

    if recorded is None:
        ref, why = plan_scope(base, cwd)
        return ref, None, f"{why} (no applied commit recorded yet)"
    if not repository.known_commit(recorded, cwd):
        return None, None, (f"full: the last applied commit {recorded[:12]} is not in this "
                            "checkout (force-push or shallow clone)")
    if not repository.is_ancestor(recorded, "HEAD", cwd):
        return None, None, (f"full: the last applied commit {recorded[:12]} is not an ancestor "
                            "of HEAD (force-push)")
    ref, why = plan_scope(recorded, cwd)
    return ref, recorded, why if ref is None else f"changed since the last applied commit " \
                                                  f"{recorded[:12]}"


@dataclass(frozen=True)
class ReviewedPlan:
    """The reviewed plan of one merge commit: where it was saved (None: not found, and why)."""

    commit: str
    pr: int | None
    path: Path | None
    reason: str

    def sections(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        return plan_sections(json.loads(self.path.read_text(encoding="utf-8")))


def assign_plans(fresh: dict[str, Any], reviewed: Sequence[ReviewedPlan],
                 scoped: bool) -> dict[str, dict[str, Any]]:
    """Which reviewed plan applies each section of this run: section id -> {plan (path or
    None), pr, reason, minutes}.

    `reviewed` is the merges since the last applied commit, newest (this push's) first; `fresh`
    this run's plan of what changed since then. This push's reviewed sections are applied as
    reviewed; a section the fresh plan still finds work in is applied from the newest merge's
    plan that covers it (an earlier merge whose run was cancelled or failed). A fresh section
    no reviewed plan covers goes the missing-plan way (posted, not applied) when the fresh plan
    was scoped to the changes since the last applied commit, or when no plan was found at all;
    a full plan's other sections are drift, left to the drift check.
    """
    head = reviewed[0]
    now = plan_sections(fresh)
    plans = [(plan, plan.sections()) for plan in reviewed]
    out: dict[str, dict[str, Any]] = {}

    def put(sid: str, plan: ReviewedPlan | None, section: dict[str, Any]) -> None:
        reason = plan.reason if plan else head.reason if head.path is None else \
            f"no reviewed plan covers section {sid} (changed since the last applied commit)"
        out[sid] = {"plan": str(plan.path) if plan and plan.path else None,
                    "pr": plan.pr if plan else head.pr, "reason": reason,
                    "minutes": section_work(section)}

    for sid, section in plans[0][1].items():
        put(sid, head, section)
    nothing_reviewed = all(plan.path is None for plan in reviewed)
    for sid, section in now.items():
        if sid in out:
            continue
        covering = next(((plan, mine[sid]) for plan, mine in plans[1:] if sid in mine), None)
        if covering is not None:
            put(sid, *covering)
        elif scoped or nothing_reviewed:
            put(sid, None, section)
    return out


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
    text = fenced(out) if fence else out
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(with_errors(text, errors) if errors_in_report else text, encoding="utf-8")
    changes = mode == "plan" and code == 2
    set_output("exit-code", str(code))
    set_output("changes", "true" if changes else "false")
    set_output("report-file", str(report.resolve()))
    if summary:
        heading = f"## {title}\n\n" if title else ""
        shown = fenced(out) if (fence if fence_summary is None else fence_summary) else out
        body = with_errors(shown, errors)
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


def apply_reviewed(
    reconcile: Sequence[str],
    plan_file: Path | None,
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
    if plan_file is not None and plan_file.is_file():
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
                         replanned=replan_on_stale, run_url=this_run_url())
    append_summary(body)
    if post is not None:
        post(body)
    if not replan_on_stale:
        click.echo(f"::error::{reason}; sections {' '.join(sections)} not applied", err=True)
        return 1
    return run_reconcile([*reconcile, "--apply", *paths, *scope, "--format", "markdown", *extra],
                         mode="apply", report=report, summary=True,
                         title=f"{title} (re-planned)")


def apply_assigned(
    reconcile: Sequence[str],
    assignment: Mapping[str, Mapping[str, Any]],
    sections: Sequence[str],
    *,
    report: Path,
    replan_on_stale: bool = False,
    extra: Sequence[str] = (),
    post: Callable[[int, str], None] | None = None,
) -> int:
    """Apply this job's sections, each from the plan `assign_plans` gave it (one `reconcile`
    per plan, as `apply_reviewed`; `post(pr, body)` tells the plan's pull request when it is
    stale or missing). Reports go to `report`, numbered when there are several plans. Returns
    the job's exit status: the first failure's, else 0."""
    groups: dict[tuple[str | None, int | None, str], list[str]] = {}
    for sid in sections:
        entry = assignment.get(sid)
        if entry is None:
            raise ValueError(f"section {sid} is not in the run's plan assignment")
        groups.setdefault((entry["plan"], entry["pr"], entry["reason"]), []).append(sid)
    status = 0
    for n, ((plan, pr, reason), ids) in enumerate(groups.items(), 1):
        part = report if len(groups) == 1 else report.with_name(
            f"{report.stem}-{n}{report.suffix}")
        tell = (lambda body, pr=pr: post(pr, body)) if post is not None and pr else None
        code = apply_reviewed(reconcile, Path(plan) if plan else None, ids, report=part,
                              missing_reason=reason, replan_on_stale=replan_on_stale,
                              extra=extra, post=tell)
        status = status or code
    return status
