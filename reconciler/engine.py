"""The library API every front end uses (CLI, GitHub Action, HTTP API):
load manifests -> observe -> plan -> apply -> one invalidation.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import git, gitscope, layout, lock, planfile, status
from .apply import apply_plan
from .cdn import Cdn, CdnError, open_cdn
from .cdn.delivery import Delivery
from .cdn.pending import Entries, PendingRecord
from .clock import Clock, SystemClock
from .dubbing import Dubber, DubbingError
from .dubbing.elevenlabs import ElevenLabs
from .errors import ReconcilerError, UsageError
from .git import GitError
from .git import PushConflict as PushConflict  # the API's --git-push conflict
from .inputs import Inputs, read_media
from .inputs.reader import InputReader, known_digest
from .lock import Lease, SectionLock
from .lock import LockError as LockError  # the API's job store
from .manifest import Section, Source, load_manifests
from .observe import observe
from .observed import ObservedSection
from .packager import MediaInfo, Packager
from .packager.ffmpeg import FfmpegPackager
from .packager.remembered import RememberedPackager
from .pay_once import Spend
from .plan import DESTROY, ORPHANED, Kind, PendingInvalidation, Plan, PlanOptions
from .planner import make_plan
from .planner import replace_targets as replace_targets  # the API checks a request's replace
from .progress import Tracker
from .results import Failure, Outcome, SectionResult, Step, public_master_url
from .runtime import Runtime
from .sources import STRICT, FetchPolicy
from .sources import SourceRefused as SourceRefused  # the API's check of a request's URL
from .sources import resolve_host as resolve_host
from .store import STORE_FORMS, Store, StoreError, open_store
from .store import PreconditionFailed as PreconditionFailed  # the API's job store

MAX_ROUNDS = 3  # re-observe and re-plan a section whose master changed under us


@dataclass
class Settings:
    """Where and how to reconcile. `from_env` reads the documented environment variables."""

    store_url: str
    distribution_id: str | None = None
    cdn_url: str | None = None
    tmp_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    workers: int = 8
    dub_concurrency: int = 2
    max_dub_minutes: float | None = None
    prune: bool = False
    allow_empty: bool = False
    deep: bool = False
    lock_ttl: float = 300.0
    lock_timeout: float = 600.0
    # How long the invalidation waits for a busy distribution (TooManyInvalidationsInProgress)
    # before its paths are left pending for the next apply.
    invalidation_timeout: float = 300.0
    # Where remote inputs may be fetched from; only code (tests) ever relaxes it.
    fetch_policy: FetchPolicy = STRICT

    @classmethod
    def from_env(cls, store_url: str | None = None, **overrides) -> Settings:
        bucket = os.environ.get("AWS_BUCKET_NAME")
        url = store_url or (f"s3://{bucket}" if bucket else None)
        if not url:
            raise UsageError(f"no store: pass --store {STORE_FORMS}, or set AWS_BUCKET_NAME")
        base = {
            "store_url": url,
            "distribution_id": os.environ.get("CLOUDFRONT_DISTRIBUTION_ID") or None,
            "cdn_url": os.environ.get("NEXT_PUBLIC_CDN_URL") or None,
            "tmp_dir": Path(os.environ.get("TMP_DIR") or tempfile.gettempdir()),
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def master_url(self, section_id: int) -> str:
        return public_master_url(self.cdn_url, self.store_url, section_id)

    @property
    def plan_options(self) -> PlanOptions:
        return PlanOptions(prune=self.prune, allow_empty=self.allow_empty)


def load(paths: list[Path], section_ids: list[int] | None = None, *,
         check_files: bool = False) -> list[Section]:
    """Validate every manifest (all must be valid), then keep the requested sections.
    `check_files`: every relative input must be an existing regular file too."""
    return select(load_manifests(paths, check_files=check_files), section_ids)


def default_manifests(cwd: Path | None = None) -> Path:
    """The default PATHS: `manifests/` in the current folder, else in the nearest parent up
    to the top of the git work tree holding it (a run from a subfolder of the repository
    finds the repository's manifests), relative to the current folder; `manifests` (which the
    error then names) when there is none."""
    here = (cwd or Path.cwd()).resolve()
    if (here / "manifests").is_dir():
        return Path("manifests")
    try:
        top = git.toplevel(here).resolve()
    except GitError:
        return Path("manifests")
    for folder in here.parents:
        if not folder.is_relative_to(top):
            break
        if (folder / "manifests").is_dir():
            return Path(os.path.relpath(folder / "manifests", here))
    return Path("manifests")


def select(sections: list[Section], section_ids: list[int] | None) -> list[Section]:
    """The sections with these ids (all when none are given); an unknown id is an error."""
    if not section_ids:
        return sections
    unknown = sorted(set(section_ids) - {s.section_id for s in sections})
    if unknown:
        raise UsageError(f"--section {unknown[0]}: no manifest declares it")
    return [s for s in sections if s.section_id in set(section_ids)]


@dataclass(frozen=True)
class Scope:
    """What one plan or apply covers: the manifests read (`paths`), the sections planned, the
    deleted manifests planned away (`removed`), the store and the options. Applying a saved
    plan fixes all of them to what the plan was made with (`saved`)."""

    paths: list[Path]
    sections: list[Section]
    removed: dict[int, str] = field(default_factory=dict)
    store_url: str | None = None
    options: PlanOptions = PlanOptions()
    saved: planfile.SavedPlan | None = None
    # Whole folders of manifests, no --section or --changed-since: the plan also looks for
    # orphaned sections in the bucket (naming manifest files narrows, as --section does).
    full: bool = False
    catalogue: int = 0  # sections the manifests declare (the mass-prune guard's measure)

    def check(self, plan: Plan, observed: dict[int, ObservedSection]) -> None:
        """Raise StalePlan when a saved plan no longer matches what is observed now."""
        if self.saved is not None:
            planfile.check(self.saved, self.sections, observed, plan)


def scope(paths: list[Path], section_ids: list[int] | None = None, *,
          changed_since: str | None = None, store_url: str | None = None,
          options: PlanOptions | None = None) -> Scope:
    """The run's scope from manifests (default `manifests/`): every valid manifest is read;
    `section_ids` and `changed_since` (a git ref: only manifests changed since, and the
    sections of manifests deleted since) narrow what is planned. The options' `replace`
    addresses must name what those sections declare (UnknownReplacement)."""
    paths = list(paths) or [default_manifests()]
    declared = load_manifests(paths)
    sections = select(declared, section_ids)
    removed: dict[int, str] = {}
    if changed_since:
        changes = gitscope.changed_since(changed_since, paths)
        sections = [s for s in sections if Path(s.file).resolve() in changes.files]
        ids = {s.section_id for s in declared}
        removed = {sid: p for sid, p in changes.deleted.items() if sid not in ids}
    options = options or PlanOptions()
    options = replace(options, replace=replace_targets(options.replace, sections))
    return Scope(paths, sections, removed, store_url, options,
                 full=not (section_ids or changed_since) and all(p.is_dir() for p in paths),
                 catalogue=len(declared))


def is_saved_plan(path: Path) -> bool:
    return planfile.is_saved_plan(path)


def read_saved_plan(path: Path) -> planfile.SavedPlan:
    """A saved plan; UsageError naming the file when it cannot be read as one."""
    try:
        return planfile.load(path)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        # A file the user named, not ours to trust: whatever it holds, it is their mistake.
        raise UsageError(f"{path}: not a readable saved plan ({err})") from None


def saved_scope(path: Path, section_ids: list[int] | None = None, *,
                store_url: str | None = None) -> Scope:
    """The scope a saved plan fixes: exactly the sections it covers (however they were chosen
    when it was made), narrowed to `section_ids`; its store (`store_url` must agree) and
    options. StalePlan when a covered section is no longer declared."""
    saved = read_saved_plan(path)
    saved = saved.narrow(section_ids) if section_ids else saved
    if store_url and store_url.rstrip("/") != saved.store_url.rstrip("/"):
        raise UsageError(f"the saved plan is for {saved.store_url}, not {store_url}")
    paths = [Path(p) for p in saved.paths]
    declared = load_manifests(paths)
    sections = planfile.covered(saved, declared)
    return Scope(paths, sections, dict(saved.removed), saved.store_url, saved.plan.options, saved,
                 catalogue=len(declared))


class Reconciler:
    """One store + CDN; `plan` is read-only, `apply` converges. Every seam (store, CDN,
    packager, inputs, dubber, clock) defaults to its production implementation from the
    settings; tests pass their stand-ins. `dubber` is a factory: the client is made on first
    use."""

    def __init__(self, settings: Settings, *, store: Store | None = None, cdn: Cdn | None = None,
                 packager: Packager | None = None, inputs: Inputs | None = None,
                 dubber: Callable[[], Dubber] | None = None,
                 tracker: Tracker | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.store_url, workers=settings.workers)
        self.cdn = cdn or open_cdn(self.store.url, settings.distribution_id)
        self.packager = packager or RememberedPackager(FfmpegPackager(), known_digest)
        self.inputs = inputs or InputReader(settings.fetch_policy)
        self.dubber = dubber or _default_dubber()
        self.tracker = tracker or Tracker()
        self.clock = clock or SystemClock()
        # Invalidations not yet accepted, and the one invalidation of an apply that sends them.
        self.pending = PendingRecord(self.store)
        self.delivery = Delivery(self.pending, self.cdn, timeout=settings.invalidation_timeout,
                                 say=lambda message: self.tracker.say(None, message),
                                 clock=self.clock.monotonic, sleep=self.clock.sleep)

    def read_media(self, source: Source) -> MediaInfo | None:
        """What an input holds (duration and streams) as the packager reads it; None when it is
        unreadable."""
        return read_media(self.inputs, self.packager, source)

    def observe(self, sections: list[Section], removed: Mapping[int, str] | None = None,
                previous: dict[int, ObservedSection] | None = None
                ) -> dict[int, ObservedSection]:
        observed = observe(self.store, sections, extra_ids=list(removed or {}),
                           deep=self.settings.deep, workers=self.settings.workers,
                           inputs=self.inputs, packager=self.packager, previous=previous)
        self.check_store(observed)
        self._find_unrecorded_dubs(observed)
        return observed

    def check_store(self, observed: Mapping[int, ObservedSection]) -> None:
        """When no section could be observed, ask the store once whether it answers at all:
        an unreachable store or a wrong bucket is one StoreError naming the store, not one
        error per section. A store that answers leaves the sections' own errors to the plan."""
        if not observed or any(obs.error is None for obs in observed.values()):
            return
        try:
            self.store.list(layout.LOCK_PREFIX)
        except StoreError as err:
            raise self._unreadable(err) from None

    def _unreadable(self, err: StoreError) -> StoreError:
        """The one error for a store that does not answer at all (wrong bucket, no network)."""
        return StoreError(f"store {self.store.url} cannot be read: {err}")

    def check_ready(self, plan: Plan) -> None:
        """What an apply needs before it writes anything (its first lock included): a plan
        that dubs needs the ElevenLabs client (ELEVENLABS_API_KEY), so a missing key stops the
        apply here instead of after part of a section is published."""
        dubs = [f"{sp.section_id}/{action.language}" for sp in plan.sections
                for action in sp.actions_of(Kind.DUB)]
        if not dubs:
            return
        try:
            self.dubber()
        except DubbingError as err:
            raise DubbingError(f"{len(dubs)} dub(s) planned ({', '.join(dubs)}), but {err}; "
                               "nothing was written") from None

    def _find_unrecorded_dubs(self, observed: dict[int, ObservedSection]) -> None:
        """A job record with a name but no dubbing_id is a create whose answer never reached
        the bucket: ask ElevenLabs for that name, so a dub it did accept is resumed (unpaid)
        rather than billed again. Without a key, or when ElevenLabs cannot say, the record stays
        as it is and the plan bills the dub in full (never under-counts)."""
        pending = [(rec, rec["name"]) for obs in observed.values()
                   for rec in obs.dub_jobs.values()
                   if rec.get("name") and not rec.get("dubbing_id")]
        if not pending:
            return
        try:
            client = self.dubber()
            for record, name in pending:
                found = client.find(name)
                if found:
                    record["dubbing_id"] = found
        except DubbingError as err:
            self.tracker.say(None, f"could not look up unrecorded dubs at ElevenLabs: {err}")

    def plan(self, sections: list[Section], removed: Mapping[int, str] | None = None,
             previous: dict[int, ObservedSection] | None = None,
             options: PlanOptions | None = None, *, read_pending: bool = True,
             catalogue: int | None = None,
             ) -> tuple[Plan, dict[int, ObservedSection]]:
        """Observe and plan. `removed`: sectionId -> path of a manifest deleted (or
        plan.ORPHANED, plan.DESTROY) to prune; `previous`: this run's earlier observation,
        reused where a LIST shows no change; `options`: the plan's (default: the settings'
        prune/allow_empty); `catalogue`: the mass-prune guard's count of sections.
        Invalidations earlier applies left pending are part of the plan (one GET; not for an
        apply's re-plans, whose first plan has them, `read_pending=False`)."""
        observed = self.observe(sections, removed, previous)
        waiting = (pending_invalidation(self.pending.read()) if self.cdn.sends and read_pending
                   else None)
        plan = make_plan(sections, observed, options or self.settings.plan_options, removed,
                         waiting, catalogue)
        return plan, observed

    def orphaned(self, declared: list[Section]) -> dict[int, str]:
        """Sections with a folder in the bucket and no manifest (one LIST of the assets
        folder), as `removed` entries (plan.ORPHANED)."""
        try:
            listing = self.store.list(layout.assets_prefix())
        except StoreError as err:
            raise self._unreadable(err) from None
        ids = {layout.section_of(key) for key in listing}
        ids -= {None, *(s.section_id for s in declared)}
        return {sid: ORPHANED for sid in sorted(i for i in ids if i is not None)}

    def _removed(self, scope: Scope) -> tuple[dict[int, str], int]:
        """The scope's sections to plan away (deleted manifests; orphans in a full plan) and
        the catalogue they count against."""
        removed = {**scope.removed, **(self.orphaned(scope.sections) if scope.full else {})}
        return removed, scope.catalogue + len(removed)

    def _runtime(self) -> Runtime:
        return Runtime(
            store=self.store,
            tmp_dir=self.settings.tmp_dir,
            packager=self.packager,
            inputs=self.inputs,
            workers=self.settings.workers,
            dub_concurrency=self.settings.dub_concurrency,
            dubber=self.dubber,
            tracker=self.tracker,
            clock=self.clock,
        )

    def plan_scope(self, scope: Scope, out: Path | None = None) -> Plan:
        """Plan the scope; with `out`, save the plan there to apply later exactly as shown."""
        removed, catalogue = self._removed(scope)
        plan, observed = self.plan(scope.sections, removed, options=scope.options,
                                   catalogue=catalogue)
        if out:
            planfile.save(out, plan, scope.sections, observed, store_url=self.store.url,
                          paths=scope.paths, removed=removed)
        return plan

    # -- read-only views of the catalogue (`reconcile status`, `state show`, `locks`) --------

    def leases(self) -> dict[int, Lease]:
        """Every section's lease in the bucket (live or expired), by section id."""
        found = {}
        for key in sorted(self.store.list(layout.LOCK_PREFIX)):
            sid = layout.lock_section(key)
            held = lock.read_lease(self.store, sid) if sid is not None else None
            if held is not None:
                found[sid] = held[0]
        return found

    def status(self, scope: Scope, now: float | None = None) -> status.Board:
        """The section × language board of the scope's sections: the plan's own observation
        and diff, and the sections' leases, judged live at `now` (default: the time of day).
        Writes nothing."""
        plan, observed = self.plan(scope.sections, options=scope.options)
        return status.board(plan, scope.sections, observed, self.leases(),
                            time.time() if now is None else now)

    def section_state(self, section_id: int) -> status.SectionState:
        """What the store holds about one section, read in full (every object HEADed, no
        manifest needed): objects with their metadata, dub cache and job records, lease."""
        [obs] = observe(self.store, [], extra_ids=[section_id], deep=True,
                        workers=self.settings.workers).values()
        if obs.error:
            raise StoreError(obs.error)
        cache = self.store.list(layout.dub_cache_prefix(section_id))
        jobs = {k: json.loads(got[0]) for k in cache if k.endswith(layout.JOB_SUFFIX)
                and (got := self.store.get(k)) is not None}
        cache = {k: (info if k in jobs else self.store.head(k) or info)
                 for k, info in cache.items()}
        held = lock.read_lease(self.store, section_id)
        return status.SectionState(section_id, obs.objects, tuple(obs.master_languages()),
                                   cache, jobs, held[0] if held else None)

    def apply_scope(self, scope: Scope,
                    on_plan: Callable[[Plan], None] | None = None) -> Outcome:
        """Apply the scope (a saved plan's is refused, StalePlan, when its world moved)."""
        removed, catalogue = self._removed(scope)
        return self.apply(scope.sections, removed, check=scope.check, on_plan=on_plan,
                          options=scope.options, catalogue=catalogue)

    def destroy(self, section_ids: list[int],
                on_plan: Callable[[Plan], None] | None = None) -> Outcome:
        """Take sections down (`reconcile destroy`): every object under each one's folder,
        master first, then one invalidation of the folders; under the sections' locks, as an
        apply. Manifests are not read: a section still declared is published again by the
        next apply."""
        return self.apply([], dict.fromkeys(section_ids, DESTROY), on_plan=on_plan,
                          options=PlanOptions(prune=True, allow_empty=True))

    def apply(self, sections: list[Section], removed: Mapping[int, str] | None = None, *,
              check: Callable[[Plan, dict[int, ObservedSection]], None] | None = None,
              on_plan: Callable[[Plan], None] | None = None,
              options: PlanOptions | None = None, catalogue: int | None = None) -> Outcome:
        """Converge the sections; at most one invalidation, after every section finished.

        Sections with changes are locked (one lease each in the bucket), then re-observed and
        re-planned under the lock, so a concurrent run's work is seen, not redone. `check` may
        veto that plan (a saved plan gone stale); `on_plan` sees it before anything is done.
        """
        removed = dict(removed or {})
        # The re-plan under the locks covers fewer sections: it counts against the same whole.
        catalogue = len(sections) + len(removed) if catalogue is None else catalogue
        plan, observed = self.plan(sections, removed, options=options, catalogue=catalogue)
        self.check_ready(plan)
        busy = sorted(sp.section_id for sp in plan.sections if sp.actions)
        with ExitStack() as held:
            locks = [held.enter_context(SectionLock(
                self.store, sid, ttl=self.settings.lock_ttl, timeout=self.settings.lock_timeout,
                operation="apply")) for sid in busy]
            if busy:
                scope = set(busy)
                fresh, fresh_obs = self.plan([s for s in sections if s.section_id in scope],
                                             {k: v for k, v in removed.items() if k in scope},
                                             previous=observed, options=options,
                                             read_pending=False, catalogue=catalogue)
                observed.update(fresh_obs)
                renewed = {sp.section_id: sp for sp in fresh.sections}
                plan = replace(plan, sections=tuple(renewed.get(sp.section_id, sp)
                                                    for sp in plan.sections),
                               invalidation_paths=fresh.invalidation_paths)
            if check is not None:
                check(plan, observed)
            if on_plan is not None:
                on_plan(plan)
            check_spend(plan, self.settings.max_dub_minutes)
            outcome = self._converge(sections, plan, observed,
                                     {lock.section_id: lock.guard for lock in locks})
            outcome.errors += [lock.lost for lock in locks if lock.lost]
        outcome.errors += [lock.release_error for lock in locks if lock.release_error]
        return outcome

    def _converge(self, sections: list[Section], plan: Plan,
                  observed: dict[int, ObservedSection],
                  guards: Mapping[int, Callable[[], None]]) -> Outcome:
        by_id = {s.section_id: s for s in sections}
        # Creates after a lost answer count on top of the plan's own against the cap.
        rt = replace(self._runtime(), guards=dict(guards),
                     spend=Spend(self.settings.max_dub_minutes, plan.dub_minutes))
        recorder = rt.recorder()
        results: dict[int, SectionResult] = {}
        first_plan = plan
        for _round in range(MAX_ROUNDS):
            for r in results.values():
                r.conflict = False  # a re-plan with nothing left to do resolves it
            for r in apply_plan(plan, by_id, observed, rt, recorder):
                previous = results.get(r.section_id)
                results[r.section_id] = merge_rounds(previous, r) if previous else r
            retry = [by_id[sid] for sid, r in results.items() if r.conflict]
            if not retry:
                break
            self.tracker.say(None, f"master changed under us for {len(retry)} section(s): "
                                   "re-planning")
            plan, observed = self.plan(retry, options=first_plan.options, read_pending=False)
        for r in results.values():
            if r.conflict:
                r.failures.append(
                    Failure(Step.WRITE_MASTER, None, "master.m3u8 kept changing under this run")
                )
        outcome = Outcome(first_plan, list(results.values()), None, self.settings.cdn_url,
                          self.store.url, self.cdn.description)
        paths = list(dict.fromkeys(p for r in results.values() for p in r.invalidation_paths))
        try:  # with what earlier applies left pending, which is sent even when paths is empty
            outcome.invalidation = self.delivery.send(paths)
        except CdnError as err:
            outcome.errors.append(str(err))
        # The state index last: its settle wait (S3 stamps LastModified in whole seconds) has
        # been running while the invalidation request was made.
        recorder.record()
        return outcome


def merge_rounds(earlier: SectionResult, later: SectionResult) -> SectionResult:
    """`later` (a re-plan's round) carrying on what `earlier` rounds did and said: uploads,
    fixes, deletions, dubs, invalidation paths and warnings are not forgotten by a re-plan."""
    for name in ("uploaded", "fixed", "deleted", "dubbed", "invalidation_paths"):
        setattr(later, name, getattr(earlier, name) + getattr(later, name))
    later.warnings = list(dict.fromkeys(earlier.warnings + later.warnings))
    return later


def pending_invalidation(entries: Entries) -> PendingInvalidation | None:
    """What a plan shows of the CDN's pending record (cdn/pending.py): every pending path
    once, since the oldest entry, the last error."""
    if not entries:
        return None
    ordered = sorted(entries.values(), key=lambda e: e["since"])
    paths = tuple(dict.fromkeys(p for e in ordered for p in e["paths"]))
    errors = [e["error"] for e in ordered if e.get("error")]
    return PendingInvalidation(paths, ordered[0]["since"], errors[-1] if errors else "")


class SpendLimitExceeded(ReconcilerError):
    """Apply refused before any request: new dubbing would exceed --max-dub-minutes."""


def check_spend(plan: Plan, limit: float | None) -> None:
    """Refuse a plan whose new dubbing bills over `limit` minutes, or cannot be priced."""
    if limit is None:
        return
    if plan.unpriced_dubs:
        raise SpendLimitExceeded(
            f"billable dubbing minutes unknown for {', '.join(plan.unpriced_dubs)}, so "
            f"--max-dub-minutes {limit:g} cannot be checked; nothing was done"
        )
    if plan.dub_minutes > limit:
        raise SpendLimitExceeded(
            f"new dubbing would bill {plan.dub_minutes:.2f} minutes, over "
            f"--max-dub-minutes {limit:g}; nothing was done"
        )


def _default_dubber() -> Callable[[], Dubber]:
    """ElevenLabs from the environment, created on first use (a run without dubs never needs
    the key)."""
    client: list[ElevenLabs] = []
    guard = threading.Lock()

    def get() -> ElevenLabs:
        with guard:
            if not client:
                client.append(ElevenLabs.from_env())
            return client[0]

    return get


# -- what the front ends need of the seams, in one place (they import the engine alone) -------


def reachable_store(url: str) -> Store:
    """Open a store and read it once (its lock folder: one small LIST), so a server started on
    it fails now, in one line, instead of answering every request with an error."""
    store = open_store(url)
    store.list(layout.LOCK_PREFIX)
    return store


def unlock(store_url: str, section_id: int, lock_id: str, *, force: bool = False) -> Lease:
    """Remove a section's lock left behind by a dead run (`reconcile unlock`): only with its
    exact id, and only once it expired unless `force`. LockError otherwise."""
    return lock.unlock(open_store(store_url), section_id, lock_id, force=force)
