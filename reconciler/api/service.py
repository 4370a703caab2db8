"""The API's service: a request becomes a manifest change (merged, validated, written
atomically, optionally committed) and a durable job runs the ordinary engine on the section.
One cohesive thing: the life of a dubbing request from manifest to job result."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import engine
from ..errors import BUG_REPORT, ReconcilerError
from ..manifest import (
    MAX_MESSAGE,
    InvalidManifests,
    Section,
    Source,
    manifest_files,
    read_yaml,
)
from ..plan import PlanOptions, UnknownReplacement
from ..redaction import one_line, redact
from .allowlist import ApiConfigError, check_source
from .catalogue import BrokenReport, Catalogue, scan
from .config import ApiConfig
from .errors import ApiError
from .jobs import JobQueue
from .jobstore import Idempotency, Job, Status, default_url, open_job_store
from .manifest_edit import ManifestEdit, edited, new_manifest
from .models import (
    DeclaredLanguage,
    DryRunResult,
    DubbingRequest,
    DubbingResult,
    Health,
    InvalidManifest,
    JobList,
    JobStatus,
    LanguageFailure,
    ManifestsHealth,
    PlannedAction,
    SectionStatus,
    WebhookDelivery,
)
from .publishing import ManifestGit
from .webhooks import Notifier

log = logging.getLogger(__name__)

def _iso(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _same(code: str, other: str) -> bool:
    return code.lower() == other.lower()


@dataclass
class Submitted:
    """What `submit` did: a job queued, or nothing to do (result ready now)."""

    job: Job | None = None
    ready: DubbingResult | None = None


class DubbingService:
    """Manifest merge + durable jobs + the reconciler. Thread-safe; blocking (call it from a
    thread pool, not the event loop)."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.manifests_dir = config.manifests_dir.resolve()
        if not self.manifests_dir.is_dir():
            raise ApiConfigError(f"manifests directory {config.manifests_dir} does not exist")
        self.settings = engine.Settings.from_env(
            config.store_url, workers=config.jobs, dub_concurrency=config.dub_concurrency,
            max_dub_minutes=config.max_dub_minutes, lock_ttl=config.job_lease)
        self.git = (ManifestGit.open(self.manifests_dir, config.git_push, config.git_author)
                    if config.git_commit or config.git_push else None)
        self.jobs = open_job_store(config.job_store or default_url(config.data_dir),
                                   lease=config.job_lease)
        self.notifier = (Notifier(config.webhook, self.jobs, self.webhook_payload)
                         if config.webhook else None)
        self.queue = JobQueue(self.jobs, self.run_job, workers=config.workers,
                              on_finish=self.notifier.notify if self.notifier else None)
        self._manifest_lock = threading.Lock()  # read-merge-write-commit-enqueue, in order
        self._reconciler_lock = threading.Lock()
        self._reader: engine.Reconciler | None = None
        self.broken_report = BrokenReport()

    def start(self) -> None:
        """Run jobs (and deliver callbacks a stopped server still owed)."""
        self.queue.start()
        if self.notifier is not None:
            self.notifier.resume()

    def stop(self) -> None:
        self.queue.stop()
        if self.notifier is not None:
            self.notifier.close()

    # -- helpers ---------------------------------------------------------------------------

    def master_url(self, section_id: int) -> str:
        return self.settings.master_url(section_id)

    def reconciler(self) -> engine.Reconciler:
        """A fresh reconciler (a job's apply keeps per-run state)."""
        return engine.Reconciler(self.settings)  # progress: the debug log (progress.Tracker)

    def reader(self) -> engine.Reconciler:
        """A shared reconciler for read-only observation."""
        with self._reconciler_lock:
            if self._reader is None:
                self._reader = self.reconciler()
            return self._reader

    def master_languages(self, section_id: int) -> list[str]:
        """What the store's master.m3u8 lists (reads only the section's prefix)."""
        observed = self.reader().observe([], {section_id: ""})[section_id]
        if observed.error:
            raise ApiError(503, "store_unavailable", "the store could not be read")
        return observed.master_languages()

    def catalogue(self) -> Catalogue:
        """The manifests now: valid ones served, broken ones set aside (and logged)."""
        catalogue = scan(self.manifests_dir)
        self.broken_report.update(catalogue)
        return catalogue

    def find_manifest(self, section_id: int) -> tuple[Catalogue, Path, dict[str, Any] | None]:
        """The file declaring the section (any name), else where the API would create it.
        A section whose file is broken is a 409 naming the file's first problem: the API never
        overwrites a manifest it could not read."""
        catalogue = self.catalogue()
        own = self.manifests_dir / f"section-{section_id}.yaml"
        for path in manifest_files([self.manifests_dir]):
            try:
                _node, data = read_yaml(path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError, InvalidManifests) as err:
                if path.resolve() == own.resolve():
                    problem = (catalogue.describe(err.errors[0])
                               if isinstance(err, InvalidManifests)
                               else f"{catalogue.name(path)}: cannot be read")
                    raise _invalid(problem) from None
                continue
            if isinstance(data, dict) and data.get("sectionId") == section_id:
                if path in catalogue.broken:
                    raise _invalid(catalogue.describe(catalogue.broken[path][0]))
                return catalogue, path, data
        return catalogue, own, None

    # -- POST /api/dubbing ------------------------------------------------------------------

    def submit(self, req: DubbingRequest, idempotency_key: str | None = None) -> Submitted:
        """Record the request in the manifest and queue a job (or answer at once when all is
        served). With an Idempotency-Key, a request seen before returns its job; the same key
        with another body is a 422."""
        check_source(req.inputVideoUrl, self.config.allowed_sources, self.config.resolver)
        sid = req.curriculumSectionId
        idempotency = (idempotency_key, request_digest(req)) if idempotency_key else None
        checked = self._check_new_video(req)  # before the lock: it may download the video
        with self._manifest_lock:
            prior = self._prior(idempotency)
            if prior is not None:
                return Submitted(job=prior)
            base = self.git.sync() if self.git is not None else None
            catalogue, path, current = self.find_manifest(sid)
            edit, codes, source = self._merge(sid, current, req)
            if (current is None or edit.video is not None) and not checked:
                self.check_video(req.inputVideoUrl)  # the manifest changed meanwhile
            if edit.languages or edit.video is not None or current is None:
                text = self._manifest_text(path, current, edit, req, source)
                with self._staged(catalogue, path, text) as (staged, sections):
                    targets = self._targets(req, sections)  # before the manifest is written
                    os.replace(staged, path)
                _fsync_folder(path.parent)
                notes = []
                added = [entry["code"] for entry in edit.languages]
                if self.git is not None and base is not None:
                    failure = self.git.publish(path, sid, added, edit.video is not None, base)
                    if failure is not None:
                        return Submitted(job=self.queue.record_failed(
                            sid, req.inputVideoUrl, codes, failure, idempotency))
                elif self.git is not None:
                    problem = self.git.commit(path, sid, added, edit.video is not None)
                    notes = [problem] if problem else []
                return Submitted(job=_same_request(self.queue.submit(
                    sid, req.inputVideoUrl, codes, notes, idempotency, targets), idempotency))
        targets = self._targets(req, self._load(catalogue, sid)) if req.replace else ()
        ready = None if targets else self._ready_now(catalogue, sid, codes)
        if ready is not None:
            return Submitted(ready=ready)
        with self._manifest_lock:
            prior = self._prior(idempotency)  # the same request may have been queued meanwhile
            if prior is not None:
                return Submitted(job=prior)
            return Submitted(job=_same_request(self.queue.submit(
                sid, req.inputVideoUrl, codes, idempotency=idempotency, replace=targets),
                idempotency))

    @staticmethod
    def _targets(req: DubbingRequest, sections: list[Section]) -> tuple[str, ...]:
        """The request's `replace` as the engine's targets (`11/ja`), each declared by the
        merged manifest (422 naming the first that is not)."""
        sid = req.curriculumSectionId
        try:
            return engine.replace_targets([f"{sid}/{what}" for what in req.replace],
                                   [s for s in sections if s.section_id == sid])
        except UnknownReplacement as err:
            raise ApiError(422, "unknown_replacement",
                           str(err).replace(f"--replace {sid}/", "replace ", 1),
                           "replace") from None

    @staticmethod
    def _load(catalogue: Catalogue, sid: int) -> list[Section]:
        try:
            return catalogue.load(catalogue.valid, [sid])
        except InvalidManifests as err:  # changed since the scan
            raise _invalid(catalogue.describe(err.errors[0])) from None

    def _check_new_video(self, req: DubbingRequest) -> bool:
        """Check the request's video when it would enter the section's manifest (a new section,
        or replaceVideo); True when checked."""
        _catalogue, _path, current = self.find_manifest(req.curriculumSectionId)
        if current is not None and (current.get("video") == req.inputVideoUrl
                                    or not req.replaceVideo):
            return False  # already declared, or a 409 video_conflict under the lock
        self.check_video(req.inputVideoUrl)
        return True

    def check_video(self, url: str) -> None:
        """Nothing that cannot converge is recorded: the object must exist and ffprobe must
        find a video stream in it (422 inputVideoUrl otherwise). The language half of this
        rule is the manifest's own validation of the staged file (ElevenLabs' language table),
        which refuses a language it does not dub before anything is written."""
        source = Source(urlsplit(url).scheme.lower(), url)
        reader = self.reader()
        state = reader.inputs.identify(source)
        if state.error is not None:
            raise ApiError(422, "video_unreadable", redact(state.error)[:MAX_MESSAGE],
                           "inputVideoUrl")
        info = reader.read_media(source)
        if info is None or not info.video_codec:
            raise ApiError(422, "not_a_video",
                           f"{source.display()} is not a video (ffprobe finds no video stream)",
                           "inputVideoUrl")

    def _prior(self, idempotency: Idempotency | None) -> Job | None:
        """The job an earlier request with this Idempotency-Key made (422 if its body was
        another)."""
        if idempotency is None:
            return None
        prior = self.jobs.by_idempotency_key(idempotency[0])
        return None if prior is None else _same_request(prior, idempotency)

    def dry_run(self, req: DubbingRequest) -> DryRunResult:
        """What the request would change and cost; nothing is written or queued."""
        check_source(req.inputVideoUrl, self.config.allowed_sources, self.config.resolver)
        sid = req.curriculumSectionId
        self._check_new_video(req)
        with self._manifest_lock:
            catalogue, path, current = self.find_manifest(sid)
            edit, _codes, source = self._merge(sid, current, req)
            text = self._manifest_text(path, current, edit, req, source)
            with self._staged(catalogue, path, text) as (_staged, sections):
                mine = [section for section in sections if section.section_id == sid]
                targets = self._targets(req, mine)
        plan, _observed = self.reader().plan(mine, options=PlanOptions(replace=targets))
        section_plan = plan.sections[0]
        return DryRunResult(
            sectionId=sid, languagesToAdd=[entry["code"] for entry in edit.languages],
            videoReplaced=edit.video is not None, changes=plan.counts(),
            actions=[PlannedAction(type=str(a.type), change=str(a.change), language=a.language,
                                   reason=a.reason) for a in section_plan.actions],
            billableMinutes=plan.dub_minutes, unpricedLanguages=list(section_plan.unpriced),
            errors=[str(problem) for problem in section_plan.errors])

    def _manifest_text(self, path: Path, current: dict[str, Any] | None, edit: ManifestEdit,
                       req: DubbingRequest, source: str | None) -> str:
        if current is None:
            return new_manifest(req.curriculumSectionId, req.inputVideoUrl, source,
                                edit.languages)
        return edited(path.read_text(encoding="utf-8"), edit)

    def _merge(self, sid: int, current: dict[str, Any] | None, req: DubbingRequest
               ) -> tuple[ManifestEdit, list[str], str | None]:
        """(the edit of the manifest, requested codes as the manifest spells them, the video's
        spoken language). Languages are only added; a different video is a 409 unless
        replaceVideo."""
        doc = current or {}
        source = self._source_language(sid, doc, req)
        video = None
        if current is not None and doc.get("video") != req.inputVideoUrl:
            if not req.replaceVideo:
                raise ApiError(
                    409, "video_conflict",
                    f"section {sid} already has video {redact(str(doc.get('video')))}; "
                    "send replaceVideo: true to replace it", "inputVideoUrl")
            video = req.inputVideoUrl
        spelled: list[str] = [str(lang.get("code")) for lang in doc.get("languages") or []
                              if isinstance(lang, dict) and lang.get("code") is not None]
        entries: list[dict[str, str]] = []
        codes: list[str] = []
        for code in dict.fromkeys(req.targetLanguages):
            have = next((c for c in spelled if _same(c, code)), None)
            if have is None:
                same = source is not None and _same(code, source)
                entries.append({"code": code, "audio": "source"} if same else {"code": code})
                spelled.append(code)
                have = code
            if have not in codes:
                codes.append(have)
        return ManifestEdit(video=video, languages=entries), codes, source

    def _source_language(self, sid: int, doc: dict[str, Any], req: DubbingRequest) -> str | None:
        """The video's spoken language: the manifest's, else the request's, else the server's
        default. An existing manifest's is never changed (it is part of every dub's identity:
        changing it would pay for each dub again)."""
        declared = doc.get("sourceLanguage")
        declared = None if declared in (None, "auto") else str(declared)
        if declared and req.sourceLanguage and not _same(declared, req.sourceLanguage):
            raise ApiError(409, "source_language_conflict",
                           f"section {sid} declares sourceLanguage {declared}, not "
                           f"{req.sourceLanguage}; change it in its manifest", "sourceLanguage")
        return declared or req.sourceLanguage or self.config.source_language

    @contextlib.contextmanager
    def _staged(self, catalogue: Catalogue, path: Path, text: str
                ) -> Iterator[tuple[Path, list[Section]]]:
        """The new text in a temporary file beside `path` (fsynced, the file's mode), validated
        with every other valid manifest: yields (that file, the sections loaded). An invalid
        manifest is never left behind; the caller may os.replace it onto `path`."""
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                        dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            # mkstemp makes it 0600; a manifest is an ordinary, readable repository file.
            tmp.chmod(path.stat().st_mode & 0o777 if path.exists() else 0o644)
            others = [f for f in catalogue.valid if f.resolve() != path.resolve()]
            try:
                sections = catalogue.load([*others, tmp])
            except InvalidManifests as err:
                mine = [e for e in err.errors if e.file == str(tmp)]
                if mine:
                    first = mine[0]
                    raise ApiError(422, "invalid_manifest",
                                   f"the resulting manifest would be invalid: {first.field}: "
                                   f"{first.message}", _request_field(first.field)) from None
                raise ApiError(409, "manifests_invalid",
                               f"other manifests are invalid ({len(err.errors)} problem(s), "
                               f"first: {catalogue.describe(err.errors[0])}); fix them first"
                               ) from None
            yield tmp, sections
        finally:
            tmp.unlink(missing_ok=True)

    def _ready_now(self, catalogue: Catalogue, sid: int, codes: list[str]
                   ) -> DubbingResult | None:
        """The result, when every requested language is already served for the declared video
        (the plan has nothing to do for them); else None (a job is needed)."""
        from ..plan import Kind

        plan, observed = self.reader().plan(self._load(catalogue, sid))
        section_plan = next(p for p in plan.sections if p.section_id == sid)
        listed = observed[sid].master_languages()
        blocking = {None, *(c.lower() for c in codes)}
        if section_plan.errors or any(
            a.type not in (Kind.WRITE_MASTER, Kind.DELETE_OBJECTS)
            and (a.language.lower() if a.language else None) in blocking
            for a in section_plan.actions
        ):
            return None
        if not all(any(_same(c, m) for m in listed) for c in codes):
            return None
        return DubbingResult(ok=True, sectionId=sid, languagesReady=listed,
                             masterUrl=self.master_url(sid))

    # -- the job ----------------------------------------------------------------------------

    def run_job(self, job: Job) -> tuple[str, dict[str, Any]]:
        """Reconcile the job's section with the ordinary engine; report per language."""
        sid = job.section_id
        notes: list[str] = list((job.result or {}).get("errors", []))  # met on acceptance
        errors: list[str] = []
        by_language: dict[str, list[str]] = {}
        section_wide: list[str] = []
        catalogue = self.catalogue()
        try:
            sections = catalogue.load(catalogue.valid, [sid])
            outcome = self.reconciler().apply(sections, options=PlanOptions(replace=job.replace))
            errors += outcome.errors
            for sp in outcome.plan.sections:
                if sp.section_id == sid:
                    for problem in sp.errors:
                        code = problem.language
                        if code and any(_same(code, c) for c in job.languages):
                            by_language.setdefault(code.lower(), []).append(problem.what)
                        else:
                            section_wide.append(str(problem))
            for result in outcome.results:
                if result.section_id != sid:
                    continue
                for failure in result.failures:
                    if failure.language:
                        by_language.setdefault(failure.language.lower(), []).append(
                            f"{failure.step}: {failure.message}")
                    else:
                        section_wide.append(str(failure))
        except InvalidManifests as err:  # changed since the scan
            section_wide.append(catalogue.describe(err.errors[0]))
        except ReconcilerError as err:
            section_wide.append(one_line(err))
        except Exception:  # the engine's own bugs: log them, tell the client little
            log.exception("job %s: reconcile failed; %s", job.id, BUG_REPORT)
            section_wide.append("internal error while reconciling (see the server log)")
        try:
            ready = self.master_languages(sid)
        except Exception:
            log.exception("job %s: cannot read master.m3u8", job.id)
            ready = []
            errors.append("could not read master.m3u8 after the reconcile")
        failed = []
        for code in job.languages:
            reasons = by_language.get(code.lower(), [])
            listed = any(_same(code, m) for m in ready)
            if reasons or not listed:
                reason = "; ".join(reasons or section_wide or errors
                                   or ["not listed in master.m3u8 after the reconcile"])
                failed.append({"code": code, "reason": reason})
        ok = not failed
        result = {"languagesReady": ready, "languagesFailed": failed, "ok": ok,
                  "errors": notes + errors + [e for e in section_wide if e not in errors]}
        return (Status.SUCCEEDED if ok else Status.FAILED), result

    def webhook_payload(self, job: Job) -> dict[str, Any]:
        """The job-finished callback's body."""
        status = self.job_status(job)
        return {"jobId": job.id, "status": job.status, "sectionId": job.section_id,
                "languagesReady": status.languagesReady,
                "languagesFailed": [f.model_dump() for f in status.languagesFailed],
                "masterUrl": status.masterUrl}

    def list_jobs(self, section_id: int | None, status: str | None, limit: int) -> JobList:
        return JobList(jobs=[self.job_status(job)
                             for job in self.jobs.recent(section_id, status, limit)])

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued job (409 once it runs or has ended). The languages it added stay
        declared: the API never removes languages."""
        if self.jobs.get(job_id) is None:
            raise ApiError(404, "not_found", "no such job")
        if not self.queue.cancel(job_id):
            job = self.jobs.get(job_id)
            raise ApiError(409, "job_not_queued",
                           f"the job is {job.status if job else 'gone'}; only a queued job can "
                           "be cancelled")
        job = self.jobs.get(job_id)
        assert job is not None
        return self.job_status(job)

    def job_status(self, job: Job) -> JobStatus:
        result = job.result or {}
        return JobStatus(
            jobId=job.id, status=job.status, sectionId=job.section_id,  # type: ignore[arg-type]
            languagesRequested=list(job.languages),
            languagesReady=result.get("languagesReady", []),
            languagesFailed=[LanguageFailure(**f) for f in result.get("languagesFailed", [])],
            masterUrl=self.master_url(job.section_id),
            ok=bool(job.finished and result.get("ok")),
            errors=result.get("errors", []),
            createdAt=_iso(job.created_at), startedAt=_iso(job.started_at),  # type: ignore[arg-type]
            finishedAt=_iso(job.finished_at),
            webhook=WebhookDelivery(**job.delivery) if job.delivery else None,
        )

    def job_result(self, job: Job) -> DubbingResult:
        status = self.job_status(job)
        return DubbingResult(ok=status.ok, sectionId=job.section_id,
                             languagesReady=status.languagesReady, masterUrl=status.masterUrl,
                             jobId=job.id, languagesFailed=status.languagesFailed)

    def health(self) -> Health:
        catalogue = self.catalogue()
        return Health(ok=True, manifests=ManifestsHealth(
            valid=len(catalogue.valid),
            invalid=[InvalidManifest(file=catalogue.name(path),
                                     problems=[catalogue.describe(p) for p in problems])
                     for path, problems in catalogue.broken.items()]))

    # -- GET /api/sections/{id} --------------------------------------------------------------

    def section(self, sid: int) -> SectionStatus:
        catalogue, path, data = self.find_manifest(sid)
        declared: list[DeclaredLanguage] = []
        video = None
        if data is not None:
            try:
                section = catalogue.load([path])[0]
            except InvalidManifests as err:  # changed since the scan
                raise _invalid(catalogue.describe(err.errors[0])) from None
            video = section.video.display()
            declared = [DeclaredLanguage(code=lang.code, name=lang.name, default=lang.default,
                                         dubbed=lang.audio is None)
                        for lang in section.languages]
        observed = self.reader().observe([], {sid: ""})[sid]
        if observed.error:
            raise ApiError(503, "store_unavailable", "the store could not be read")
        if data is None and not observed.master_text:
            raise ApiError(404, "not_found", f"section {sid} has no manifest and no master")
        return SectionStatus(sectionId=sid, manifest=path.name if data is not None else None,
                             video=video, declaredLanguages=declared,
                             observedLanguages=observed.master_languages(),
                             masterUrl=self.master_url(sid))


def _same_request(job: Job, idempotency: Idempotency | None) -> Job:
    """The job, when it was made by a request with this Idempotency-Key and digest (another
    replica may have stored the key first); a 422 when that request had another body."""
    if idempotency is not None and job.request_digest != idempotency[1]:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used with another request body",
                       "Idempotency-Key")
    return job


def request_digest(req: DubbingRequest) -> str:
    """What makes two requests the same for Idempotency-Key: their parsed bodies (so key order
    and whitespace do not count)."""
    canonical = json.dumps(req.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fsync_folder(folder: Path) -> None:
    """A rename is durable once its folder is."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _invalid(problem: str) -> ApiError:
    return ApiError(409, "manifest_invalid",
                    f"the section's manifest is invalid: {problem}; fix it first")


def _request_field(manifest_field: str) -> str | None:
    if manifest_field == "video":
        return "inputVideoUrl"
    if manifest_field.startswith("languages"):
        return "targetLanguages"
    return None

