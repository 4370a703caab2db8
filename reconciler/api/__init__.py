"""HTTP API for the web app (`reconcile serve`): a package of small rooms.

    config.py     ApiConfig and its environment variables, the loopback-only no-auth rule
    allowlist.py  RECONCILER_ALLOWED_SOURCES and the check of a request's input URL
    errors.py     ApiError and the one error body {error, message, field}
    models.py     pydantic request/response bodies
    service.py    request -> manifest change (merge, atomic write, git commit) -> durable job
    catalogue.py  the manifests served: valid files, broken ones set aside and reported
    manifest_edit.py  round-trip YAML edits: only the new entries are added
    app.py        FastAPI routes, the ASGI guard (auth, body cap and deadline, strict JSON),
                  OpenAPI patching, serve()
    http.py       uvicorn settings: header deadline, connection limit; duplicate JSON keys
    jobs.py       the durable job queue (SQLite): a 202 survives a crash, a section's jobs in order
    webhooks.py   signed job-finished callbacks, retried, delivery recorded on the job

Like every front end it imports the library through `engine` (errors, git commits, the address
policy of `reconciler.sources` that the CLI's input fetching obeys too), views and models.
"""

from ..engine import resolve_host
from .allowlist import AllowedSources, ApiConfigError
from .app import create_app, serve
from .config import ApiConfig, check_exposure, is_loopback
from .http import Limits
from .jobstore import JobStoreError
from .service import DubbingService

__all__ = ["AllowedSources", "ApiConfig", "ApiConfigError", "DubbingService", "JobStoreError",
           "Limits", "check_exposure", "create_app", "is_loopback", "resolve_host", "serve"]
