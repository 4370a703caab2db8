"""Views of a Plan and of an apply's outcome: text (Terraform's `+ ~ - -/+`), JSON, markdown.

Views only read; they never compute what the plan should be. The JSON view of a plan is the
saved plan's format: its codec (`plan_dict` / `plan_from_dict`, which round-trip exactly) lives
in planfile.py, since the format is not a view. Every key of the CLI's JSON is camelCase
(formatVersion 2; version 1 mixed in snake_case), like the manifests' sectionId.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from . import layout
from .plan import (
    FORMAT_VERSION,
    Action,
    Change,
    Kind,
    PendingInvalidation,
    Plan,
    SectionPlan,
)
from .planfile import plan_dict

if TYPE_CHECKING:
    from .results import Outcome

REPLACE = "-/+"  # a rendition rebuilt: its objects are replaced, as Terraform marks a replacement
SYMBOL = {Change.CREATE: "+", Change.UPDATE: "~", Change.DELETE: "-", Change.REPLACE: REPLACE}
COLOR = {"+": "green", "~": "yellow", "-": "red", "!": "red"}
LABEL = {
    Kind.PACKAGE_VIDEO: "package video",
    Kind.DUB: "dub",
    Kind.PACKAGE_AUDIO: "package audio",
    Kind.PACKAGE_SUBTITLES: "package subtitles",
    Kind.FIX_METADATA: "fix metadata",
    Kind.ADOPT: "adopt",
    Kind.REWRITE_PLAYLIST: "rewrite playlist",
    Kind.WRITE_MASTER: "write master.m3u8",
    Kind.DELETE_OBJECTS: "delete objects",
}


def _short(section_id: int, key: str) -> str:
    prefix = layout.section_prefix(section_id)
    return key[len(prefix):] if key.startswith(prefix) else key


def symbol(a: Action) -> str:
    if a.type in (Kind.PACKAGE_VIDEO, Kind.PACKAGE_AUDIO) and a.change == Change.UPDATE:
        return REPLACE
    return SYMBOL[a.change]


def colorize(text: str) -> str:
    """ANSI colour for a text view's change markers, errors and summary (for a terminal)."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.lstrip(" ")
        indent = line[: len(line) - len(body)]
        mark = body.split(" ", 1)[0]
        if mark == REPLACE:
            body = click.style("-", fg="red") + click.style("/+", fg="green") + body[3:]
        elif mark in COLOR:
            body = click.style(mark, fg=COLOR[mark], bold=(mark == "!") or None) + body[len(mark):]
        elif body.startswith(("Plan:", "No changes.", "Apply complete")):
            body = click.style(body.rstrip("\n"), bold=True) + "\n" * body.endswith("\n")
        out.append(indent + body)
    return "".join(out)


def action_line(section_id: int, a: Action) -> str:
    what = LABEL[a.type]
    if a.type == Kind.FIX_METADATA:
        what += " " + ", ".join(_short(section_id, k) for k in a.keys)
    elif a.type == Kind.DELETE_OBJECTS and a.language is None:  # a deleted manifest: all of it
        what += f" {layout.section_prefix(section_id)} ({len(a.keys)})"
    elif a.type == Kind.DELETE_OBJECTS:
        folder = "subtitles" if a.keys and "/subtitles/" in a.keys[0] else "audio"
        what += f" {folder}/{a.language}/ ({len(a.keys)})"
    elif a.type == Kind.ADOPT:
        what += " video" if a.language is None else f" audio {a.language}"
    elif a.language:
        what += f" {a.language}"
    why = [a.reason] if a.reason else []
    if a.minutes is not None and a.type == Kind.DUB:
        why.append(f"{a.minutes:.2f} billable min")
    why += [f"{k}: {v}" for k, v in a.detail]
    return f"{symbol(a)} {what}" + (f"  ({'; '.join(why)})" if why else "")


def summary_line(plan: Plan) -> str:
    if plan.has_errors and not plan.has_changes:
        return "Plan: errors prevent some changes (see above)."
    if not plan.has_changes:
        n = sum(1 for sp in plan.sections if sp.file)  # kept sections no manifest declares:
        return f"No changes. {n} section{'s' if n != 1 else ''} match{'es' if n == 1 else ''} " \
               "the manifests."  # not counted (their notes say why they stay)
    c = plan.counts()
    line = f"Plan: {c['create']} to create, {c['update']} to update, {c['delete']} to delete"
    line += f", {c['replace']} to replace." if c["replace"] else "."
    if plan.dub_minutes:
        line += f" Dubbing: {plan.dub_minutes:.2f} billable minutes."
    return line


def _section_lines(sp: SectionPlan) -> list[str]:
    lines = [f"  {action_line(sp.section_id, a)}" for a in sp.actions]
    lines += [f"  ! error: {e}" for e in sp.errors]
    lines += [f"  note: {n}" for n in sp.notes]
    return lines


SHOWN_PATHS = 10  # pending paths listed by the text and markdown views; the JSON has all


def pending_line(pending: PendingInvalidation) -> str:
    """`~ invalidate 3 paths pending since …`: an earlier apply's invalidation, not accepted."""
    n = len(pending.paths)
    line = f"~ invalidate {n} path{'s' if n != 1 else ''} pending since {pending.since}"
    return line + (f"  (last attempt: {pending.error})" if pending.error else "")


def _pending_paths(pending: PendingInvalidation) -> list[str]:
    more = len(pending.paths) - SHOWN_PATHS
    return [*pending.paths[:SHOWN_PATHS], *([f"… and {more} more"] if more > 0 else [])]


def plan_text(plan: Plan) -> str:
    out: list[str] = []
    for sp in plan.sections:
        if not (sp.actions or sp.errors or sp.notes):
            continue
        out.append(f"section {sp.section_id}" + (f" ({sp.file})" if sp.file else ""))
        out += _section_lines(sp)
        out.append("")
    if plan.pending_invalidation is not None:
        out.append("CDN (an earlier apply's invalidation was not accepted; the next apply sends "
                   "it):")
        out.append(f"  {pending_line(plan.pending_invalidation)}")
        out += [f"      {p}" for p in _pending_paths(plan.pending_invalidation)]
        out.append("")
    if plan.invalidation_paths:
        out.append("Invalidation (one, after all uploads):")
        out += [f"  {p}" for p in plan.invalidation_paths]
        out.append("")
    out.append(summary_line(plan))
    return "\n".join(out) + "\n"


# -- JSON (the saved plan's format, planfile.py's codec) ----------------------------------


def plan_json(plan: Plan) -> str:
    return json.dumps(plan_dict(plan), indent=2) + "\n"


# -- markdown (pull-request comments) ------------------------------------------------------


def _cell(items: list[str]) -> str:
    return ", ".join(items) if items else "—"


def plan_markdown(plan: Plan) -> str:
    # No heading: the PR comment and the job summary put their own above it.
    out = [f"**{summary_line(plan)}**", ""]
    if plan.pending_invalidation is not None:
        out += ["An earlier apply's invalidation was not accepted; the next apply sends it:", "",
                "```diff", pending_line(plan.pending_invalidation).replace("~ ", "! ", 1),
                *[f"    {p}" for p in _pending_paths(plan.pending_invalidation)], "```", ""]
    rows = [sp for sp in plan.sections if sp.actions or sp.errors]
    # What is kept and why (orphaned sections, languages left in the bucket): the drift
    # report's and the PR comment's only sight of them, as they have no row.
    notes = [f"- section {sp.section_id}: {note}" for sp in plan.sections
             if not (sp.actions or sp.errors) for note in sp.notes]
    out += ["Kept:", "", *notes, ""] if notes else []
    if rows:
        out += [
            "| Section | Video | Languages added / rebuilt | Metadata fixes | Dub minutes "
            "| Invalidation | Errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for sp in rows:
            video = next((a.change for a in sp.actions_of(Kind.PACKAGE_VIDEO)), "—")
            langs = [a.language or "" for a in sp.actions_of(Kind.PACKAGE_AUDIO)]
            fixes = len(sp.actions_of(Kind.FIX_METADATA))
            minutes = sum(a.minutes or 0 for a in sp.actions_of(Kind.DUB))
            inval = [p for p in plan.invalidation_paths
                     if p.startswith(layout.cdn_path(layout.section_prefix(sp.section_id)))]
            out.append(
                f"| {sp.section_id} | {video} | {_cell(langs)} | {fixes or '—'} | "
                f"{f'{minutes:.2f}' if minutes else '—'} | {_cell([f'`{p}`' for p in inval])} | "
                f"{len(sp.errors) or '—'} |"
            )
        out.append("")
        for sp in rows:
            out += [
                f"<details><summary>Section {sp.section_id}: {len(sp.actions)} change(s)"
                f"{f', {len(sp.errors)} error(s)' if sp.errors else ''}</summary>",
                "",
                "```diff",
                *[line.strip().replace("~ ", "! ", 1) for line in _section_lines(sp)],
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(out) + "\n"


PLAN_VIEWS = {"text": plan_text, "json": plan_json, "markdown": plan_markdown}


# -- apply outcome -------------------------------------------------------------------------


def outcome_dict(outcome: Outcome) -> dict:
    inv = outcome.invalidation
    return {
        "formatVersion": FORMAT_VERSION,
        "ok": outcome.ok,
        "plan": plan_dict(outcome.plan),
        "sections": [
            {
                "sectionId": r.section_id,
                "ok": r.ok,
                "languagesReady": r.languages_ready,
                "failures": [
                    {"step": f.step, "language": f.language, "message": f.message,
                     "detail": f.detail}
                    for f in r.failures
                ],
                "warnings": r.warnings,
                "uploaded": len(r.uploaded),
                "fixed": r.fixed,
                "deleted": r.deleted,
                "dubbed": r.dubbed,
                "masterWritten": r.master_written,
                "masterUrl": outcome.master_url(r.section_id),
            }
            for r in outcome.results
        ],
        "invalidation": {"id": inv.id, "paths": list(inv.paths), "cdn": outcome.cdn}
        if inv else None,
        "invalidationId": inv.id if inv else None,
        "errors": outcome.errors,
    }


def outcome_text(outcome: Outcome) -> str:
    out: list[str] = []
    for r in outcome.results:
        state = "ok" if r.ok else "FAILED"
        out.append(f"section {r.section_id}: {state}; languages ready: "
                   f"{', '.join(r.languages_ready) or '(unchanged)'}")
        out.append(f"  uploaded {len(r.uploaded)}, metadata fixed {len(r.fixed)}, "
                   f"deleted {len(r.deleted)}, dubbed {len(r.dubbed)}"
                   + ("; master written" if r.master_written else ""))
        out.append(f"  master: {outcome.master_url(r.section_id)}")
        out += [f"  warning: {w}" for w in r.warnings]
        for f in r.failures:
            out.append(f"  ! {f}")
            out += [f"    | {line}" for line in f.detail.splitlines()]
    out += [f"! {e}" for e in outcome.errors]
    inv = outcome.invalidation
    if inv is not None:
        ident = inv.id or "not sent"
        out.append(f"Invalidation {ident} ({outcome.cdn}): {', '.join(inv.paths)}")
    ok = sum(r.ok for r in outcome.results)
    failed = len(outcome.results) - ok
    if not outcome.results and outcome.ok:
        out.append("Apply complete: nothing to do.")
    else:
        out.append(f"Apply {'complete' if outcome.ok else 'incomplete'}: {ok} section(s) "
                   f"converged, {failed} failed.")
    return "\n".join(out) + "\n"


def outcome_markdown(outcome: Outcome) -> str:
    return "```\n" + outcome_text(outcome) + "```\n"  # the job summary has the heading


OUTCOME_VIEWS = {
    "text": outcome_text,
    "json": lambda o: json.dumps(outcome_dict(o), indent=2) + "\n",
    "markdown": outcome_markdown,
}
