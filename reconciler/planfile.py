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
from dataclasses import dataclass
from pathlib import Path

from .manifest import Section
from .observe import ObservedSection
from .plan import Plan
from .render import plan_dict, plan_from_dict

KIND = "reconciler-saved-plan"


class StalePlan(Exception):
    """The store, the inputs or the manifests changed since the plan was made."""


def manifests_digest(sections: list[Section]) -> str:
    """Digest of what the manifests mean (not of absolute paths), stable across machines."""
    doc = [
        {
            "sectionId": s.section_id,
            "video": s.video.uri,
            "sourceLanguage": s.source_language,
            "dubbing": [s.dubbing.num_speakers, s.dubbing.watermark],
            "languages": [[lang.code, lang.name, lang.default,
                           lang.audio.uri if lang.audio else None] for lang in s.languages],
        }
        for s in sections
    ]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def fingerprint(observed: dict[int, ObservedSection]) -> dict[str, dict]:
    """Per section: every object's ETag (under the section and its dub cache) and the inputs."""
    out: dict[str, dict] = {}
    for sid, obs in sorted(observed.items()):
        objects = {k: v.etag for k, v in sorted(obs.objects.items())}
        objects.update({k: v.etag for k, v in sorted(obs.dub_cache.items())})
        inputs = {"video": obs.video_input.identity if obs.video_input else None}
        inputs.update({c: s.identity for c, s in sorted(obs.audio_inputs.items())})
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
    plan: Plan
    store_url: str
    paths: list[str]
    section_ids: list[int]
    removed: dict[int, str]
    digest: str
    observed: dict[str, dict]


def save(path: Path, plan: Plan, sections: list[Section], observed: dict[int, ObservedSection],
         *, store_url: str, paths: list[Path], section_ids: list[int],
         removed: dict[int, str]) -> None:
    doc = {
        "kind": KIND,
        "plan": plan_dict(plan),
        "store": store_url,
        "manifests": {"paths": [str(p) for p in paths], "sections": section_ids,
                      "removed": {str(k): v for k, v in removed.items()},
                      "digest": manifests_digest(sections)},
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
    if doc.get("kind") != KIND:
        raise ValueError(f"{path}: not a saved plan")
    return SavedPlan(
        plan=plan_from_dict(doc["plan"]),
        store_url=doc["store"],
        paths=doc["manifests"]["paths"],
        section_ids=doc["manifests"]["sections"],
        removed={int(k): v for k, v in doc["manifests"].get("removed", {}).items()},
        digest=doc["manifests"]["digest"],
        observed=doc["observed"],
    )


def check(saved: SavedPlan, sections: list[Section], observed: dict[int, ObservedSection],
          replanned: Plan) -> None:
    """Raise StalePlan naming what moved; silent when the saved plan is still exactly right."""
    problems: list[str] = []
    if manifests_digest(sections) != saved.digest:
        problems.append("the manifests changed")
    problems += moved(saved.observed, fingerprint(observed))
    if not problems and plan_dict(replanned) != plan_dict(saved.plan):
        problems.append("re-planning gives a different plan")
    if problems:
        raise StalePlan("stale plan: " + "; ".join(problems))
