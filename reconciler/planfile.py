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
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path

from . import layout
from .manifest import Section, Source
from .observe import ObservedSection
from .plan import Plan
from .render import plan_dict, plan_from_dict

KIND = "reconciler-saved-plan"
# Section fields that name where a manifest is, not what it declares.
MACHINE_FIELDS = frozenset({"file"})


class StalePlan(Exception):
    """The store, the inputs or the manifests changed since the plan was made."""


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

    plan: Plan
    store_url: str
    paths: list[str]
    section_ids: list[int]
    removed: dict[int, str]
    digests: dict[str, str]  # sectionId -> manifests_digest of that section
    observed: dict[str, dict]

    def narrow(self, ids: list[int]) -> SavedPlan:
        """The part of this plan covering `ids` only (one job of a matrix applies its chunk).
        Raises ValueError naming an id the plan does not cover."""
        covered = set(self.section_ids) | set(self.removed)
        outside = [i for i in ids if i not in covered]
        if outside:
            raise ValueError(f"--section {outside[0]}: not covered by the saved plan")
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


def save(path: Path, plan: Plan, sections: list[Section], observed: dict[int, ObservedSection],
         *, store_url: str, paths: list[Path], removed: dict[int, str]) -> None:
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
    path.write_text(json.dumps(doc, indent=1) + "\n")


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
          replanned: Plan) -> None:
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
