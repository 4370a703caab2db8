"""HTTP API for the web app: `POST /api/dubbing` and friends, on the same engine as the CLI.

The API is not a second pipeline. A request is turned into desired state (the section's manifest
file, merged and validated exactly as `reconcile validate` would), then a durable job runs the
ordinary reconciler on that one section (`engine.load` -> `Reconciler.apply`). What the store
serves afterwards is the answer. Manifests the API writes are ordinary manifests, optionally
committed to their git repository, so GitOps review and the CLI see the same truth.

    POST /api/dubbing              merge languages into section-{id}.yaml, queue a reconcile
                                   (202 {jobId, statusUrl}; 200 with the result on ?wait=S
                                   or when everything asked for is already served)
    GET  /api/dubbing/jobs/{id}    the job's status and result
    GET  /api/sections/{id}        declared (manifest) and observed (master.m3u8) languages
    GET  /healthz                  liveness, no auth

Safety: a bearer token (RECONCILER_API_TOKEN) on everything but /healthz and /openapi.json;
input URLs only from an allow-list (RECONCILER_ALLOWED_SOURCES) and never to private addresses
(SSRF); bodies capped; every error is JSON {error, message, field} without internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import langcodes
import uvicorn
import yaml
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import engine, layout
from .cdn import CdnError
from .jobs import FAILED, SUCCEEDED, Job, JobQueue, JobStore
from .lock import LockError
from .manifest import (
    MAX_MESSAGE,
    InvalidManifests,
    load_manifests,
    manifest_files,
    read_yaml,
    shown,
)
from .redaction import redact
from .sources import FetchPolicy, SourceRefused, resolve_host
from .store import StoreError

log = logging.getLogger(__name__)

CODE_PATTERN = r"^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$"  # the manifest schema's language code
URL_PATTERN = r"^(s3|https)://\S+$"
MAX_SECTION_ID = 2**31 - 1
MAX_LANGUAGES = 20
MAX_WAIT = 900.0
DEFAULT_MAX_BODY = 64 * 1024
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
MANIFEST_HEADER = (
    "# Written by the reconciler HTTP API (POST /api/dubbing). An ordinary manifest\n"
    "# (schemas/section.schema.json): review, edit or delete it like any other.\n"
)
DEFAULT_GIT_AUTHOR = ("reconciler-api", "reconciler-api@localhost")


class ApiConfigError(ValueError):
    """The server cannot start safely with this configuration."""


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSources:
    """RECONCILER_ALLOWED_SOURCES parsed: S3 buckets and https hosts (with port) inputs may use.

    Entries look like `s3://uploads-bucket` or `https://media.example.com[:port]`; nothing else
    is accepted, so a typo fails at start instead of silently allowing less (or more).
    """

    buckets: frozenset[str] = frozenset()
    hosts: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def parse(cls, text: str) -> AllowedSources:
        buckets: set[str] = set()
        hosts: set[tuple[str, int]] = set()
        for raw in (e.strip() for e in text.split(",")):
            if not raw:
                continue
            parts = urlsplit(raw)
            scheme = parts.scheme.lower()
            try:
                port = parts.port
            except ValueError:
                raise ApiConfigError(f"allowed source {redact(raw)!r}: bad port") from None
            if (parts.username or parts.password or parts.query or parts.fragment
                    or parts.path.strip("/")):
                raise ApiConfigError(
                    f"allowed source {redact(raw)!r}: give only s3://BUCKET or https://HOST[:PORT]")
            if scheme == "s3" and parts.netloc and port is None:
                buckets.add(parts.netloc)
            elif scheme == "https" and parts.hostname:
                hosts.add((_norm_host(parts.hostname), port or 443))
            else:
                raise ApiConfigError(
                    f"allowed source {redact(raw)!r}: expected s3://BUCKET or https://HOST[:PORT]")
        return cls(frozenset(buckets), frozenset(hosts))


def _norm_host(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass
class ApiConfig:
    """Everything the API server needs; `from_env` fills the documented environment variables.

    workers: jobs run in parallel (different sections only); 0 accepts jobs without running
    them. jobs / dub_concurrency: the reconciler's own upload and dubbing parallelism.
    """

    manifests_dir: Path
    data_dir: Path
    store_url: str | None = None
    token: str | None = None
    allowed_sources: AllowedSources = field(default_factory=AllowedSources)
    workers: int = 2
    insecure_no_auth: bool = False
    git_commit: bool = False
    git_author: tuple[str, str] = DEFAULT_GIT_AUTHOR
    max_body_bytes: int = DEFAULT_MAX_BODY
    jobs: int = 8
    dub_concurrency: int = 2
    max_dub_minutes: float | None = None  # per job: a job whose dubbing would bill more fails
    source_language: str | None = None  # spoken language when neither request nor manifest says
    resolver: Callable[[str, int], list[str]] = resolve_host

    @classmethod
    def from_env(cls, manifests_dir: Path, data_dir: Path, **overrides: Any) -> ApiConfig:
        """RECONCILER_API_TOKEN, RECONCILER_ALLOWED_SOURCES, RECONCILER_GIT_AUTHOR_NAME,
        RECONCILER_GIT_AUTHOR_EMAIL and RECONCILER_SOURCE_LANGUAGE; keyword arguments win."""
        author = (os.environ.get("RECONCILER_GIT_AUTHOR_NAME") or DEFAULT_GIT_AUTHOR[0],
                  os.environ.get("RECONCILER_GIT_AUTHOR_EMAIL") or DEFAULT_GIT_AUTHOR[1])
        base: dict[str, Any] = {
            "token": os.environ.get("RECONCILER_API_TOKEN") or None,
            "allowed_sources": AllowedSources.parse(
                os.environ.get("RECONCILER_ALLOWED_SOURCES", "")),
            "git_author": author,
            "source_language": os.environ.get("RECONCILER_SOURCE_LANGUAGE", "").strip() or None,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(Path(manifests_dir), Path(data_dir), **base)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: the only binds allowed without a token."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(config: ApiConfig, host: str) -> None:
    """Refuse to serve without a token, except on loopback with insecure_no_auth."""
    if config.token:
        return
    if not config.insecure_no_auth:
        raise ApiConfigError("RECONCILER_API_TOKEN is not set; refusing to serve without auth "
                             "(for local development: --insecure-no-auth on 127.0.0.1)")
    if not is_loopback(host):
        raise ApiConfigError(f"--insecure-no-auth is only allowed on a loopback address, "
                             f"not {host}")


# -- errors -------------------------------------------------------------------------------------


class ApiError(Exception):
    """An expected failure with its HTTP status; rendered as {error, message, field}."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field


def error_body(error: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": error, "message": message, "field": field}


def _json_error(status: int, error: str, message: str, field: str | None = None,
                headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(error, message, field), status_code=status, headers=headers)


# -- models -------------------------------------------------------------------------------------


def _check_code(code: str) -> str:
    if not re.fullmatch(CODE_PATTERN, code) or not langcodes.tag_is_valid(code):
        raise ValueError(f"{shown(code)} is not a valid BCP 47 language tag")
    return code


def _check_url_shape(url: str) -> str:
    """What needs no configuration: scheme, no credentials, no whitespace. The allow-list and
    address checks come later (they need the config and, for https, DNS)."""
    if any(c.isspace() for c in url) or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("URL must not contain whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("s3", "https"):
        raise ValueError("only s3://BUCKET/KEY or https://HOST/PATH URLs are accepted")
    if "@" in parts.netloc:
        raise ValueError("URL must not embed credentials (user:password@)")
    return url


LanguageCode = Annotated[
    str,
    Field(min_length=1, max_length=35, json_schema_extra={"pattern": CODE_PATTERN},
          description="BCP 47 language tag (ko, en, ja, zh-Hans, pt-BR)."),
    AfterValidator(_check_code),
]


class DubbingRequest(BaseModel):
    """Serve this section's lecture in these languages (missing ones are dubbed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "inputVideoUrl": "s3://uploads-bucket/lectures/11/source.mp4",
        "targetLanguages": ["ko", "en", "ja"],
        "curriculumSectionId": 11,
    }]})

    inputVideoUrl: Annotated[str, AfterValidator(_check_url_shape)] = Field(
        min_length=1, max_length=2048, json_schema_extra={"pattern": URL_PATTERN},
        description="The lecture video: s3://BUCKET/KEY or https://HOST/PATH from an allowed "
                    "source.")
    targetLanguages: list[LanguageCode] = Field(
        min_length=1, max_length=MAX_LANGUAGES,
        description="Languages to serve; ones the manifest lacks are added (without audio, so "
                    "they are dubbed). Languages are never removed.")
    curriculumSectionId: int = Field(gt=0, le=MAX_SECTION_ID, strict=True)
    replaceVideo: bool = Field(
        False, strict=True,
        description="Allow replacing the video of a section that already has another one.")
    sourceLanguage: LanguageCode | None = Field(
        None, description="The language spoken in the video (default: the manifest's, else the "
                          "server's RECONCILER_SOURCE_LANGUAGE). A target language equal to it "
                          "is served from the video's own audio track, not dubbed.")


class JobAccepted(BaseModel):
    jobId: str
    statusUrl: str


class LanguageFailure(BaseModel):
    code: str
    reason: str


class DubbingResult(BaseModel):
    """The web app's answer: which languages the section's master.m3u8 lists now."""

    ok: bool = Field(description="Every requested language is served.")
    sectionId: int
    languagesReady: list[str] = Field(description="Languages master.m3u8 lists, in its order.")
    masterUrl: str
    jobId: str | None = Field(None, description="The job that ran; null when nothing was to do.")
    languagesFailed: list[LanguageFailure] = Field(default_factory=list)


class JobStatus(BaseModel):
    jobId: str
    status: Literal["queued", "running", "succeeded", "failed"]
    sectionId: int
    languagesRequested: list[str]
    languagesReady: list[str]
    languagesFailed: list[LanguageFailure]
    masterUrl: str
    ok: bool
    errors: list[str] = Field(default_factory=list)
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None


class DeclaredLanguage(BaseModel):
    code: str
    name: str
    default: bool
    dubbed: bool = Field(description="No audio given: the language is dubbed by ElevenLabs.")


class SectionStatus(BaseModel):
    sectionId: int
    manifest: str | None = Field(description="The manifest file declaring the section.")
    video: str | None
    declaredLanguages: list[DeclaredLanguage]
    observedLanguages: list[str] = Field(description="Languages master.m3u8 lists now.")
    masterUrl: str


class ErrorBody(BaseModel):
    error: str
    message: str
    field: str | None = None


class Health(BaseModel):
    ok: bool


# -- input URL policy (SSRF) ------------------------------------------------------------------


def check_source(url: str, allowed: AllowedSources,
                 resolver: Callable[[str, int], list[str]]) -> None:
    """Raise ApiError(422, field inputVideoUrl) unless the URL is an allowed, public input."""

    def refuse(message: str) -> ApiError:
        return ApiError(422, "input_not_allowed", message, "inputVideoUrl")

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse("URL must not embed credentials (user:password@)")
    if scheme == "s3":
        key = parts.path.lstrip("/")
        if not parts.netloc or not key:
            raise refuse("expected s3://BUCKET/KEY")
        if parts.netloc not in allowed.buckets:
            raise refuse(f"bucket {parts.netloc!r} is not an allowed source")
        return
    if scheme != "https":
        raise refuse("only s3:// and https:// URLs are accepted")
    try:
        port = parts.port or 443
    except ValueError:
        raise refuse("invalid port") from None
    host = _norm_host(parts.hostname or "")
    if not host:
        raise refuse("expected https://HOST/PATH")
    if (host, port) not in allowed.hosts:
        raise refuse(f"host {host}:{port} is not an allowed source")
    try:  # the same address rule every fetch enforces again when it connects (sources.py)
        FetchPolicy(resolver=resolver).addresses(host, port)
    except SourceRefused as exc:
        raise refuse(str(exc)) from None


# -- the service: manifests + jobs --------------------------------------------------------------


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
            max_dub_minutes=config.max_dub_minutes)
        self.git_root = self._git_root() if config.git_commit else None
        self.jobs = JobStore(config.data_dir / "jobs.sqlite3")
        self.queue = JobQueue(self.jobs, self.run_job, workers=config.workers,
                              data_dir=config.data_dir)
        self._manifest_lock = threading.Lock()  # read-merge-write-commit-enqueue, in order
        self._reconciler_lock = threading.Lock()
        self._reader: engine.Reconciler | None = None

    # -- helpers ---------------------------------------------------------------------------

    def master_url(self, section_id: int) -> str:
        base = (self.settings.cdn_url or self.settings.store_url).rstrip("/")
        return f"{base}/{layout.master_key(section_id)}"

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

    def find_manifest(self, section_id: int) -> tuple[Path, dict[str, Any] | None]:
        """The file declaring the section (any name), else where the API would create it."""
        own = self.manifests_dir / f"section-{section_id}.yaml"
        for path in manifest_files([self.manifests_dir]):
            try:
                _node, data = read_yaml(path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError, InvalidManifests) as err:
                if path.resolve() == own.resolve():  # never overwrite it unread
                    raise ApiError(409, "manifest_invalid", "the section's manifest is invalid: "
                                   f"{getattr(err, 'errors', [err])[0]}; fix it first") from None
                continue
            if isinstance(data, dict) and data.get("sectionId") == section_id:
                return path, data
        return self.manifests_dir / f"section-{section_id}.yaml", None

    # -- POST /api/dubbing ------------------------------------------------------------------

    def submit(self, req: DubbingRequest) -> Submitted:
        check_source(req.inputVideoUrl, self.config.allowed_sources, self.config.resolver)
        sid = req.curriculumSectionId
        requested = list(dict.fromkeys(req.targetLanguages))
        with self._manifest_lock:
            path, current = self.find_manifest(sid)
            if current is not None:
                try:
                    load_manifests([path])
                except InvalidManifests as err:
                    raise ApiError(409, "manifest_invalid",
                                   f"the section's manifest is invalid: {err.errors[0]}; fix it "
                                   "first") from None
            doc, codes, added, replaced = self._merge(sid, current, req, requested)
            if added or replaced or current is None:
                self._write_manifest(path, doc)
                if self.git_root is not None:
                    self._commit(path, sid, added, replaced)
                return Submitted(job=self.queue.submit(sid, req.inputVideoUrl, codes))
        ready = self._ready_now(sid, codes)
        if ready is not None:
            return Submitted(ready=ready)
        with self._manifest_lock:
            return Submitted(job=self.queue.submit(sid, req.inputVideoUrl, codes))

    def _merge(self, sid: int, current: dict[str, Any] | None, req: DubbingRequest,
               requested: list[str]) -> tuple[dict[str, Any], list[str], list[str], bool]:
        """(new document, requested codes as the manifest spells them, added codes, video
        replaced). Languages are only added; a different video is a 409 unless replaceVideo."""
        if current is None:
            doc: dict[str, Any] = {"sectionId": sid, "video": req.inputVideoUrl, "languages": []}
        else:
            doc = dict(current)
        replaced = False
        source = self._source_language(sid, doc, req)
        if current is None and source:
            doc["sourceLanguage"] = source
        if current is not None and doc.get("video") != req.inputVideoUrl:
            if not req.replaceVideo:
                raise ApiError(
                    409, "video_conflict",
                    f"section {sid} already has video {redact(str(doc.get('video')))}; "
                    "send replaceVideo: true to replace it", "inputVideoUrl")
            doc["video"] = req.inputVideoUrl
            replaced = True
        languages = list(doc.get("languages") or [])
        spelled: list[str] = [str(lang.get("code")) for lang in languages
                              if isinstance(lang, dict) and lang.get("code") is not None]
        added: list[str] = []
        codes: list[str] = []
        for code in requested:
            have = next((c for c in spelled if _same(c, code)), None)
            if have is None:
                same = source is not None and _same(code, source)
                languages.append({"code": code, "audio": "source"} if same else {"code": code})
                spelled.append(code)
                added.append(code)
                have = code
            if have not in codes:
                codes.append(have)
        doc["languages"] = languages
        return doc, codes, added, replaced

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

    def _write_manifest(self, path: Path, doc: dict[str, Any]) -> None:
        """Validate the result with every other manifest, then replace the file atomically:
        an invalid manifest is never left behind."""
        text = MANIFEST_HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
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
            others = [f for f in manifest_files([self.manifests_dir])
                      if f.resolve() != path.resolve()]
            try:
                load_manifests([*others, tmp])
            except InvalidManifests as err:
                mine = [e for e in err.errors if e.file == str(tmp)]
                if mine:
                    first = mine[0]
                    raise ApiError(422, "invalid_manifest",
                                   f"the resulting manifest would be invalid: {first.field}: "
                                   f"{first.message}", _request_field(first.field)) from None
                raise ApiError(409, "manifests_invalid",
                               f"other manifests are invalid ({len(err.errors)} problem(s), "
                               f"first: {err.errors[0]}); fix them first") from None
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _git_root(self) -> Path:
        try:
            out = subprocess.run(["git", "-C", str(self.manifests_dir), "rev-parse",
                                  "--show-toplevel"], capture_output=True, text=True,
                                 check=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            raise ApiConfigError(
                f"--git-commit: {self.manifests_dir} is not in a git work tree") from None
        return Path(out.stdout.strip())

    def _commit(self, path: Path, sid: int, added: list[str], replaced: bool) -> None:
        """Commit this one file (other staged changes are left alone). A failed commit is
        logged, not fatal: the manifest is valid and written, and the next commit carries it."""
        what = []
        if replaced:
            what.append("replace video")
        if added:
            what.append("add " + ", ".join(added))
        message = f"api: section {sid}: {'; '.join(what) or 'declare section'}"
        name, email = self.config.git_author
        env = {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        root = str(self.git_root)
        try:
            subprocess.run(["git", "-C", root, "add", "--", str(path)], check=True,
                           capture_output=True, env=env, timeout=60)
            subprocess.run(["git", "-C", root, "commit", "-q", "-m", message, "--", str(path)],
                           check=True, capture_output=True, env=env, timeout=60)
        except (OSError, subprocess.SubprocessError) as err:
            log.error("git commit of %s failed: %s", path, err)

    def _ready_now(self, sid: int, codes: list[str]) -> DubbingResult | None:
        """The result, when every requested language is already served for the declared video
        (the plan has nothing to do for them); else None (a job is needed)."""
        from .plan import Kind

        try:
            sections = engine.load([self.manifests_dir], [sid])
        except InvalidManifests as err:
            raise ApiError(409, "manifests_invalid",
                           f"manifests are invalid: {err.errors[0]}; fix them first") from None
        plan, observed = self.reader().plan(sections)
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
        errors: list[str] = []
        by_language: dict[str, list[str]] = {}
        section_wide: list[str] = []
        try:
            sections = engine.load([self.manifests_dir], [sid])
            outcome = self.reconciler().apply(sections)
            errors += outcome.errors
            for sp in outcome.plan.sections:
                if sp.section_id == sid:
                    for problem in sp.errors:
                        head, _, rest = problem.partition(": ")
                        if any(_same(head, c) for c in job.languages):
                            by_language.setdefault(head.lower(), []).append(rest)
                        else:
                            section_wide.append(problem)
            for result in outcome.results:
                if result.section_id != sid:
                    continue
                for failure in result.failures:
                    if failure.language:
                        by_language.setdefault(failure.language.lower(), []).append(
                            f"{failure.step}: {failure.message}")
                    else:
                        section_wide.append(str(failure))
        except (InvalidManifests, engine.SpendLimitExceeded, LockError, StoreError, CdnError,
                ValueError, OSError) as err:
            section_wide.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
        except Exception:  # the engine's own bugs: log them, tell the client little
            log.exception("job %s: reconcile failed", job.id)
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
                  "errors": errors + [e for e in section_wide if e not in errors]}
        return (SUCCEEDED if ok else FAILED), result

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
        )

    def job_result(self, job: Job) -> DubbingResult:
        status = self.job_status(job)
        return DubbingResult(ok=status.ok, sectionId=job.section_id,
                             languagesReady=status.languagesReady, masterUrl=status.masterUrl,
                             jobId=job.id, languagesFailed=status.languagesFailed)

    # -- GET /api/sections/{id} --------------------------------------------------------------

    def section(self, sid: int) -> SectionStatus:
        path, data = self.find_manifest(sid)
        declared: list[DeclaredLanguage] = []
        video = None
        if data is not None:
            try:
                section = load_manifests([path])[0]
            except InvalidManifests as err:
                raise ApiError(409, "manifest_invalid",
                               f"the section's manifest is invalid: {err.errors[0]}") from None
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


def _request_field(manifest_field: str) -> str | None:
    if manifest_field == "video":
        return "inputVideoUrl"
    if manifest_field.startswith("languages"):
        return "targetLanguages"
    return None


# -- ASGI guard: auth + body cap ------------------------------------------------------------------


class Guard:
    """Bearer auth and a body-size cap, before any routing or parsing (so an unauthenticated
    or oversized request costs nothing and never reaches validation); and the last word on
    crashes: a bare JSON 500, the traceback only in the log."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._guarded(scope, receive, tracking_send)
        except Exception as exc:
            # Answered here rather than re-raised, so the server keeps the connection sane.
            log.error("unhandled error in %s %s", scope.get("method"), scope.get("path"),
                      exc_info=exc)
            if started:
                raise
            await _send_json(send, 500, error_body("internal", "internal server error"))

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.token is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(),
                                                                       self.token):
                await _send_json(send, 401, error_body(
                    "unauthorized", "missing or invalid bearer token"),
                    [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _send_json(send, 400, error_body("bad_request", "invalid Content-Length"))
                return
            if int(length) > self.max_body:
                await _send_json(send, 413, error_body(
                    "body_too_large", f"request body over {self.max_body} bytes"))
                return
            await self.app(scope, receive, send)
            return
        # No length (chunked): read it here, up to the cap, then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                await _send_json(send, 413, error_body(
                    "body_too_large", f"request body over {self.max_body} bytes"))
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        *(extra or []),
    ]})
    await send({"type": "http.response.body", "body": data})


# -- the app --------------------------------------------------------------------------------------


_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422, 503)}


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-after"):
            out += f".{part}" if out else part
    return out or None


async def _wait_for(service: DubbingService, job_id: str, seconds: float) -> Job | None:
    """The job once finished, or None after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        job = await run_in_threadpool(service.jobs.get, job_id)
        if job is not None and job.finished:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(0.1, remaining))


def create_app(config: ApiConfig) -> FastAPI:
    """The FastAPI app (jobs start with the app's lifespan)."""
    if not config.token and not config.insecure_no_auth:
        raise ApiConfigError("RECONCILER_API_TOKEN is not set; refusing to run without auth")
    service = DubbingService(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.queue.stop)

    app = FastAPI(
        title="Lingoost reconciler API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(Guard, token=config.token, max_body=config.max_body_bytes)

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc.status, exc.error, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {}
        if first.get("type") == "json_invalid":
            return _json_error(400, "invalid_json", "the body is not valid JSON")
        message = str(first.get("msg", "invalid request"))
        message = redact(message.removeprefix("Value error, "))[:MAX_MESSAGE]
        return _json_error(422, "invalid_request", message, _field_of(first.get("loc", ())))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json_error(exc.status_code, slug, str(exc.detail), None,
                           headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_crash(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return _json_error(500, "internal", "internal server error")

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        """Liveness (no auth)."""
        return Health(ok=True)

    @app.post(
        "/api/dubbing", status_code=202, response_model=JobAccepted, tags=["dubbing"],
        responses={200: {"model": DubbingResult,
                         "description": "Done: with ?wait, or nothing was to do"},
                   202: {"model": JobAccepted, "description": "Queued"}, **_ERRORS},
    )
    async def post_dubbing(
        request: Request,
        body: DubbingRequest,
        wait: Annotated[float | None, Query(
            gt=0, le=MAX_WAIT,
            description="Hold the request up to this many seconds for the job to end.")] = None,
    ) -> Any:
        """Declare the section's video and languages (merged into its manifest) and reconcile
        it. Idempotent: when every language is already served, answers 200 at once."""
        submitted = await run_in_threadpool(service.submit, body)
        if submitted.ready is not None:
            return JSONResponse(submitted.ready.model_dump(mode="json"), status_code=200)
        job = submitted.job
        assert job is not None
        if wait:
            done = await _wait_for(service, job.id, wait)
            if done is not None:
                return JSONResponse(service.job_result(done).model_dump(mode="json"))
        status_url = f"/api/dubbing/jobs/{job.id}"
        return JSONResponse(JobAccepted(jobId=job.id, statusUrl=status_url).model_dump(),
                            status_code=202, headers={"Location": status_url})

    @app.get("/api/dubbing/jobs/{job_id}", response_model=JobStatus, tags=["dubbing"],
             responses=_ERRORS)
    def get_job(job_id: Annotated[str, PathParam(max_length=64)]) -> JobStatus:
        """A job's status; `ok` only when every requested language is served."""
        job = service.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", "no such job")
        return service.job_status(job)

    @app.get("/api/sections/{section_id}", response_model=SectionStatus, tags=["sections"],
             responses=_ERRORS)
    def get_section(
        section_id: Annotated[int, PathParam(gt=0, le=MAX_SECTION_ID)],
    ) -> SectionStatus:
        """Declared languages (manifest) and observed ones (the store's master.m3u8)."""
        return service.section(section_id)

    _install_openapi(app, bool(config.token))
    return app


def _install_openapi(app: FastAPI, secured: bool) -> None:
    """Our error shape for 422 (instead of FastAPI's) and the bearer scheme."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                responses = op.get("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    }}
                if secured and path not in OPEN_PATHS:
                    op["security"] = [{"bearer": []}]
                    responses.setdefault("401", {"description": "Missing or invalid token",
                                                 "content": {"application/json": {"schema": {
                                                     "$ref": "#/components/schemas/ErrorBody"}}}})
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        if secured:
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer"}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def serve(config: ApiConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the API with uvicorn until interrupted; refuses unsafe exposure first."""
    check_exposure(config, host)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not config.allowed_sources.buckets and not config.allowed_sources.hosts:
        log.warning("RECONCILER_ALLOWED_SOURCES is empty: every inputVideoUrl will be refused")
    app = create_app(config)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False,
                proxy_headers=False)
