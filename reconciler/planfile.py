"""Saved plans: `reconcile --plan --out plan.json`, then `reconcile --apply plan.json`.

The file holds the plan, the manifests' digest and a fingerprint of everything observation
read (each object's ETag, and so each absence, per section; the inputs' identities). Apply
re-observes and refuses a plan whose fingerprint moved, naming what moved, even on a first run
into an empty bucket (an object that appeared is a change too). Because planning is a pure
function, an unchanged fingerprint means re-planning yields exactly the saved plan.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path

from . import layout
from . import plan as plans  # the plan's data; `plan` names a Plan in this module
from .errors import ReconcilerError, UsageError
from .manifest import Section, Source
from .observed import ObservedSection

KIND = "reconciler-saved-plan"
# Section fields that name where a manifest is, not what it declares.
MACHINE_FIELDS = frozenset({"file"})


class StalePlan(ReconcilerError):
    """The store, the inputs or the manifests changed since the plan was made."""


# -- the plan as JSON: the saved plan's format, and the JSON view's (render.py) ------------


def camel(key: str) -> str:
    """allow_empty -> allowEmpty: the one key style of the CLI's JSON."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)


def snake(key: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)


def _action_dict(a: plans.Action) -> dict:
    return {
        "type": str(a.type),
        "change": str(a.change),
        "language": a.language,
        "reason": a.reason,
        "keys": list(a.keys),
        "sourceId": a.source_id,
        "minutes": a.minutes,
        "detail": dict(a.detail),
        "stamp": dict(a.stamp),
    }


def plan_dict(plan: plans.Plan) -> dict:
    counts = plan.counts()
    return {
        "formatVersion": plans.FORMAT_VERSION,
        "sections": [
            {
                "sectionId": sp.section_id,
                "manifest": sp.file,
                "actions": [_action_dict(a) for a in sp.actions],
                "languages": {"before": list(sp.languages_before),
                              "after": list(sp.languages_after)},
                "errors": [str(e) for e in sp.errors],
                "problems": [{"language": e.language, "kind": str(e.kind), "message": e.message}
                             for e in sp.errors],
                "notes": list(sp.notes),
                "unpriced": list(sp.unpriced),
            }
            for sp in plan.sections
        ],
        "invalidationPaths": list(plan.invalidation_paths),
        "pendingInvalidation": vars(plan.pending_invalidation) | {
            "paths": list(plan.pending_invalidation.paths)} if plan.pending_invalidation else None,
        "options": {camel(k): list(v) if isinstance(v, tuple) else v
                    for k, v in vars(plan.options).items()},
        "summary": {**counts, "dubMinutes": plan.dub_minutes, "changes": plan.has_changes,
                    "errors": plan.has_errors},
    }


def plan_from_dict(data: dict) -> plans.Plan:
    version = data.get("formatVersion", data.get("format_version"))
    if version != plans.FORMAT_VERSION:
        raise ValueError(f"plan formatVersion {version!r} is not {plans.FORMAT_VERSION}, the one "
                         "this reconciler reads: plan again")
    sections = tuple(
        plans.SectionPlan(
            section_id=s["sectionId"],
            file=s.get("manifest"),
            actions=tuple(
                plans.Action(plans.Kind(a["type"]), plans.Change(a["change"]), a.get("language"),
                             a.get("reason", ""),
                             tuple(a.get("keys", ())), a.get("sourceId"), a.get("minutes"),
                             tuple(a.get("detail", {}).items()), tuple(a.get("stamp", {}).items()))
                for a in s["actions"]
            ),
            languages_before=tuple(s["languages"]["before"]),
            languages_after=tuple(s["languages"]["after"]),
            errors=tuple(plans.PlanError(s["sectionId"], e["language"], plans.Problem(e["kind"]),
                                         e["message"]) for e in s.get("problems", ())),
            notes=tuple(s.get("notes", ())),
            unpriced=tuple(s.get("unpriced", ())),
        )
        for s in data["sections"]
    )
    pending = data.get("pendingInvalidation")
    return plans.Plan(sections, tuple(data["invalidationPaths"]), _options(data.get("options", {})),
                      plans.PendingInvalidation(tuple(pending["paths"]), pending["since"],
                                                pending.get("error", "")) if pending else None)


def _options(data: dict) -> plans.PlanOptions:
    """The plan's options, typed; a flag that is not a JSON boolean (an older plan wrote the
    strings "True"/"False") or a `replace` that is not a list of strings is refused rather than
    guessed."""
    given = {snake(k): v for k, v in data.items()}
    unknown = set(given) - set(vars(plans.PlanOptions()))
    replace = given.pop("replace", [])
    wrong = [k for k, v in given.items() if not isinstance(v, bool)]
    if unknown or wrong:
        name = camel(sorted(unknown or wrong)[0])
        raise ValueError(f"plan options: {name} is not a known true/false option; plan again")
    if not (isinstance(replace, list) and all(isinstance(r, str) for r in replace)):
        raise ValueError("plan options: replace is not a list of renditions; plan again")
    return plans.PlanOptions(**given, replace=tuple(replace))



def manifests_digest(sections: list[Section]) -> str:
    """Digest of what the manifests mean, stable across machines: every field of each section
    and its languages (subtitles and fit included, so a field added later counts without
    being listed here), each input as written (kind and URI, not its resolved absolute path),
    and not the manifest's file name."""
    doc = [_meaning(s) for s in sections]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _meaning(value: object) -> object:
    """`value` as JSON-able data, less what differs between machines for the same manifest."""
    if isinstance(value, Source):
        return [value.kind, value.uri]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _meaning(getattr(value, f.name)) for f in fields(value)
                if f.name not in MACHINE_FIELDS}
    if isinstance(value, tuple):
        return [_meaning(item) for item in value]
    return value


def fingerprint(observed: dict[int, ObservedSection]) -> dict[str, dict]:
    """Per section: every object's ETag (under the section and its dub cache) and the inputs."""
    out: dict[str, dict] = {}
    for sid, obs in sorted(observed.items()):
        objects = {k: v.etag for k, v in sorted(obs.objects.items())}
        objects.update({k: v.etag for k, v in sorted(obs.dub_cache.items())})
        inputs = {"video": obs.video_input.identity if obs.video_input else None}
        inputs.update({c: s.identity for c, s in sorted(obs.audio_inputs.items())})
        inputs.update({f"subtitles {c}": s.identity
                       for c, s in sorted(obs.subtitle_inputs.items())})
        out[str(sid)] = {"objects": objects, "inputs": inputs, "error": obs.error}
    return out


def moved(saved: dict[str, dict], now: dict[str, dict], limit: int = 10) -> list[str]:
    """What differs between two fingerprints, in words."""
    out: list[str] = []
    for sid in sorted(set(saved) | set(now), key=int):
        a, b = saved.get(sid, {}), now.get(sid, {})
        for what in ("objects", "inputs"):
            old, new = a.get(what, {}), b.get(what, {})
            for key in sorted(set(old) | set(new)):
                if key not in new:
                    out.append(f"section {sid}: {key} disappeared")
                elif key not in old:
                    out.append(f"section {sid}: {key} appeared")
                elif old[key] != new[key]:
                    label = "input " + key if what == "inputs" else key
                    out.append(f"section {sid}: {label} changed")
    if len(out) > limit:
        out = out[:limit] + [f"… and {len(out) - limit} more"]
    return out


@dataclass
class SavedPlan:
    """A saved plan; `section_ids` are the sections it covers (what `--section` or
    `--changed-since` selected when it was made), `removed` the deleted manifests it covers."""

    plan: plans.Plan
    store_url: str
    paths: list[str]
    section_ids: list[int]
    removed: dict[int, str]
    digests: dict[str, str]  # sectionId -> manifests_digest of that section
    observed: dict[str, dict]

    def narrow(self, ids: list[int]) -> SavedPlan:
        """The part of this plan covering `ids` only (one job of a matrix applies its chunk).
        Raises UsageError naming an id the plan does not cover."""
        covered = set(self.section_ids) | set(self.removed)
        outside = [i for i in ids if i not in covered]
        if outside:
            raise UsageError(f"--section {outside[0]}: not covered by the saved plan")
        keep = set(ids)
        prefixes = tuple(layout.cdn_path(layout.section_prefix(i)) for i in keep)
        plan = replace(self.plan,
                       sections=tuple(sp for sp in self.plan.sections if sp.section_id in keep),
                       invalidation_paths=tuple(p for p in self.plan.invalidation_paths
                                                if p.startswith(prefixes)))
        return replace(self, plan=plan, section_ids=[i for i in self.section_ids if i in keep],
                       removed={k: v for k, v in self.removed.items() if k in keep},
                       digests={k: v for k, v in self.digests.items() if int(k) in keep},
                       observed={k: v for k, v in self.observed.items() if int(k) in keep})


def save(path: Path, plan: plans.Plan, sections: list[Section],
         observed: dict[int, ObservedSection], *, store_url: str, paths: list[Path],
         removed: dict[int, str]) -> None:
    """Write the plan with what it covers: exactly `sections` (the ones planned, however they
    were selected) and `removed`, so applying it never widens to other manifests."""
    doc = {
        "kind": KIND,
        "plan": plan_dict(plan),
        "store": store_url,
        "manifests": {"paths": [str(p) for p in paths],
                      "sections": [s.section_id for s in sections],
                      "removed": {str(k): v for k, v in removed.items()},
                      "digests": {str(s.section_id): manifests_digest([s]) for s in sections}},
        "observed": fingerprint(observed),
    }
    try:
        path.write_text(json.dumps(doc, indent=1) + "\n")
    except OSError as err:
        raise UsageError(f"--out {path}: cannot write the plan ({err.strerror or err})") from None


def is_saved_plan(path: Path) -> bool:
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == KIND
    except (ValueError, AttributeError):
        return False


def load(path: Path) -> SavedPlan:
    doc = json.loads(path.read_text())
    if doc.get("kind") != KIND or "digests" not in doc.get("manifests", {}):
        raise ValueError(f"{path}: not a saved plan of this version; plan again")
    return SavedPlan(
        plan=plan_from_dict(doc["plan"]),
        store_url=doc["store"],
        paths=doc["manifests"]["paths"],
        section_ids=[int(i) for i in doc["manifests"]["sections"]],
        removed={int(k): v for k, v in doc["manifests"].get("removed", {}).items()},
        digests=doc["manifests"]["digests"],
        observed=doc["observed"],
    )


def covered(saved: SavedPlan, declared: list[Section]) -> list[Section]:
    """The declared sections the saved plan covers; StalePlan when one is no longer declared."""
    by_id = {s.section_id: s for s in declared}
    gone = [i for i in saved.section_ids if i not in by_id]
    if gone:
        raise StalePlan(f"stale plan: section {gone[0]}: no manifest declares it any more")
    return [by_id[i] for i in saved.section_ids]


def check(saved: SavedPlan, sections: list[Section], observed: dict[int, ObservedSection],
          replanned: plans.Plan) -> None:
    """Raise StalePlan naming what moved; silent when the saved plan is still exactly right."""
    problems = [f"section {s.section_id}: its manifest changed" for s in sections
                if manifests_digest([s]) != saved.digests.get(str(s.section_id))]
    problems += moved(saved.observed, fingerprint(observed))
    # A pending invalidation is not reviewed: the apply sends whatever is pending when it ends.
    if not problems and plan_dict(replace(replanned, pending_invalidation=None)) != plan_dict(
            replace(saved.plan, pending_invalidation=None)):
        problems.append("re-planning gives a different plan")
    if problems:
        raise StalePlan("stale plan: " + "; ".join(problems))
