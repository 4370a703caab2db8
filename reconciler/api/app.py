"""HTTP API for the web app: `POST /api/dubbing` and friends, on the same engine as the CLI.

The API is not a second pipeline. A request is turned into desired state (the section's manifest
file, merged and validated exactly as `reconcile validate` would), then a durable job runs the
ordinary reconciler on that one section (`engine.load` -> `Reconciler.apply`). What the store
serves afterwards is the answer. Manifests the API writes are ordinary manifests, optionally
committed to their git repository, so GitOps review and the CLI see the same truth.

    POST /api/dubbing              merge languages into section-{id}.yaml, queue a reconcile
                                   (202 {jobId, statusUrl}; 200 with the result on ?wait=S
                                   or when everything asked for is already served)
                                   (?dryRun=true: the plan and billable minutes, nothing stored;
                                   Idempotency-Key: a retry returns the same job)
    GET  /api/dubbing/jobs         jobs, newest first (?sectionId, ?status, ?limit)
    GET  /api/dubbing/jobs/{id}    the job's status and result
    DELETE /api/dubbing/jobs/{id}  cancel a queued job
    GET  /api/sections/{id}        declared (manifest) and observed (master.m3u8) languages
    GET  /healthz                  liveness and manifests set aside as invalid, no auth

Safety: a bearer token (RECONCILER_API_TOKEN) on everything but /healthz and /openapi.json;
input URLs only from an allow-list (RECONCILER_ALLOWED_SOURCES) and never to private addresses
(SSRF); bodies capped; every error is JSON {error, message, field} without internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BUG_REPORT, ReconcilerError
from ..manifest import MAX_MESSAGE, shown
from ..redaction import redact
from .allowlist import ApiConfigError
from .config import (
    MAX_FIELD,
    MAX_IDEMPOTENCY_KEY,
    MAX_LISTED_JOBS,
    MAX_SECTION_ID,
    MAX_WAIT,
    OPEN_PATHS,
    ApiConfig,
    check_exposure,
)
from .errors import ApiError, error_body
from .http import duplicate_key, server_config
from .jobstore import Job
from .models import (
    DryRunResult,
    DubbingRequest,
    DubbingResult,
    ErrorBody,
    Health,
    JobAccepted,
    JobList,
    JobState,
    JobStatus,
    SectionStatus,
)
from .service import DubbingService

log = logging.getLogger(__name__)

def _json_error(status: int, error: str, message: str, field: str | None = None,
                headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(error, message, field), status_code=status, headers=headers)



# -- ASGI guard: auth + body cap ------------------------------------------------------------------


class Guard:
    """Bearer auth, a body-size cap and a body deadline, before any routing or parsing (so an
    unauthenticated, oversized or trickled request costs nothing and never reaches validation);
    strict JSON (a key repeated in an object is refused, naming it); and the last word on
    crashes: a bare JSON 500, the traceback only in the log."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int,
                 body_timeout: float) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.body_timeout = body_timeout

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
            log.error("unhandled error in %s %s. %s", scope.get("method"), scope.get("path"),
                      BUG_REPORT, exc_info=exc)
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
                await _send_json(send, 413, self._too_large())
                return
        # Read the body here (capped, within the deadline), then replay it to the app.
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read_body(receive)
        except TimeoutError:
            await _send_json(send, 408, error_body(
                "request_timeout", f"the request body took over {self.body_timeout:g} s"),
                [(b"connection", b"close")])
            return
        if body is None:
            return  # client went away
        if len(body) > self.max_body:
            await _send_json(send, 413, self._too_large())
            return
        repeated = duplicate_key(body)
        if repeated is not None:
            await _send_json(send, 422, error_body(
                "duplicate_key", f"the JSON body names {shown(repeated)} more than once",
                repeated[:MAX_FIELD]))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or the first chunks over the cap; None when the client left."""
        chunks: list[bytes] = []
        size = 0
        while size <= self.max_body:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self) -> dict[str, Any]:
        return error_body("body_too_large", f"request body over {self.max_body} bytes")


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        *(extra or []),
    ]})
    await send({"type": "http.response.body", "body": data})


# -- the app --------------------------------------------------------------------------------------


_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 408, 409, 413, 422, 503)}


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
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="Lingoost reconciler API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(Guard, token=config.token, max_body=config.max_body_bytes,
                       body_timeout=config.limits.body_timeout)

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc.status, exc.error, exc.message, exc.field)

    @app.exception_handler(ReconcilerError)
    async def on_expected(_request: Request, exc: ReconcilerError) -> JSONResponse:
        """Any other expected failure (a store that does not answer, a stale plan ...): the
        request could not be done as the world stands, which the message names; 409."""
        message = redact(" ".join(str(exc).split()))[:MAX_MESSAGE]
        return _json_error(409, "failed", message or type(exc).__name__)

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
        log.error("unhandled error. %s", BUG_REPORT, exc_info=exc)
        return _json_error(500, "internal", "internal server error")

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        """Liveness (no auth), and the manifests set aside as invalid (names relative to the
        manifests folder, with their problems; the server log has the same)."""
        return service.health()

    @app.post(
        "/api/dubbing", status_code=202, response_model=JobAccepted, tags=["dubbing"],
        responses={200: {"model": DubbingResult | DryRunResult,
                         "description": "Done: with ?wait, or nothing was to do; or the plan "
                                        "with ?dryRun=true"},
                   202: {"model": JobAccepted, "description": "Queued"}, **_ERRORS},
    )
    async def post_dubbing(
        request: Request,
        body: DubbingRequest,
        wait: Annotated[float | None, Query(
            gt=0, le=MAX_WAIT,
            description="Hold the request up to this many seconds for the job to end.")] = None,
        dry_run: Annotated[bool, Query(
            alias="dryRun",
            description="Answer what it would change and bill; store nothing.")] = False,
        idempotency_key: Annotated[str | None, Header(
            alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY,
            pattern=r"^[\x21-\x7e]+$",
            description="A retry with the same key and body returns the same job; the same "
                        "key with another body is 422.")] = None,
    ) -> Any:
        """Declare the section's video and languages (merged into its manifest) and reconcile
        it. Idempotent: when every language is already served, answers 200 at once."""
        if dry_run:
            plan = await run_in_threadpool(service.dry_run, body)
            return JSONResponse(plan.model_dump(mode="json"), status_code=200)
        submitted = await run_in_threadpool(service.submit, body, idempotency_key)
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

    @app.get("/api/dubbing/jobs", response_model=JobList, tags=["dubbing"], responses=_ERRORS)
    def list_jobs(
        section_id: Annotated[int | None, Query(alias="sectionId", gt=0,
                                                le=MAX_SECTION_ID)] = None,
        status: Annotated[JobState | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LISTED_JOBS)] = 100,
    ) -> JobList:
        """Jobs, newest first (of one section, in one status)."""
        return service.list_jobs(section_id, status, limit)

    @app.delete("/api/dubbing/jobs/{job_id}", response_model=JobStatus, tags=["dubbing"],
                responses=_ERRORS)
    def cancel_job(job_id: Annotated[str, PathParam(max_length=64)]) -> JobStatus:
        """Cancel a queued job (409 once it runs). Languages it added stay in the manifest."""
        return service.cancel(job_id)

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
    uvicorn.Server(server_config(app, config.limits, host, port, log_level="info")).run()
