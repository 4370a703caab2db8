"""Sections no manifest declares (a deleted manifest, an orphaned folder, a destroy): kept
and noted unless --prune, and never the catalogue at once (the mass-prune guard). Pure."""

from __future__ import annotations

from dataclasses import replace

from . import layout
from .observed import ObservedSection
from .plan import (
    DESTROY,
    ORPHANED,
    Action,
    Change,
    Kind,
    PlanError,
    PlanOptions,
    Problem,
    SectionPlan,
)

# -- facts that master.m3u8 states --------------------------------------------------------


# A prune may delete whole sections up to this share of the catalogue's sections (or one); more
# (an emptied or wrong manifests path) needs --allow-mass-prune.
MASS_PRUNE_SHARE = 0.10


def _gone(section_id: int, manifest: str) -> str:
    if manifest == ORPHANED:
        return f"orphaned: no manifest declares section {section_id}"
    if manifest == DESTROY:
        return "taken down by reconcile destroy"
    return f"manifest {manifest} was deleted"


def plan_removed_section(section_id: int, manifest: str, obs: ObservedSection,
                         options: PlanOptions) -> SectionPlan:
    """A section no manifest declares (its manifest deleted, an orphaned folder, a destroy):
    kept and noted unless --prune (the mass-prune guard is make_plan's)."""
    keys = sorted(obs.objects)
    file = None if manifest in (ORPHANED, DESTROY) else manifest
    if not keys:
        return SectionPlan(section_id, file)
    if not options.prune:
        return SectionPlan(section_id, file, notes=(
            f"{_gone(section_id, manifest)}; {len(keys)} object(s) kept (would be deleted "
            "with --prune)",))
    master = layout.master_key(section_id)
    ordered = ([master] if master in obs.objects else []) + [k for k in keys if k != master]
    return SectionPlan(
        section_id, file,
        (Action(Kind.DELETE_OBJECTS, Change.DELETE, None,
                "manifest deleted" if file else _gone(section_id, manifest),
                keys=tuple(ordered)),),
        tuple(obs.master_languages()), (),
    )


def mass_prune_guard(sections: list[SectionPlan], catalogue: int,
                     options: PlanOptions) -> list[SectionPlan]:
    """Refuse (as a plan error on each) deleting whole sections beyond MASS_PRUNE_SHARE of the
    `catalogue`'s sections and more than one, unless allowed: an emptied or mistyped manifests
    path must not take the catalogue down."""
    doomed = [sp for sp in sections if any(
        a.type == Kind.DELETE_OBJECTS and a.language is None for a in sp.actions)]
    if options.allow_empty or len(doomed) <= max(1, MASS_PRUNE_SHARE * catalogue):
        return sections
    message = (f"pruning would delete {len(doomed)} of the catalogue's {catalogue} sections "
               f"(more than {MASS_PRUNE_SHARE:.0%}); refused: pass --allow-mass-prune if that "
               "is meant")
    ids = {sp.section_id for sp in doomed}
    return [replace(sp, actions=(), errors=(PlanError(sp.section_id, None, Problem.REMOVED,
                                                      message),))
            if sp.section_id in ids else sp for sp in sections]
