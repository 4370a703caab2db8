"""HTTP API for the web app (`reconcile serve`): a package of small rooms.

    config.py     ApiConfig and its environment variables, the loopback-only no-auth rule
    allowlist.py  RECONCILER_ALLOWED_SOURCES and the check of a request's input URL
    errors.py     ApiError and the one error body {error, message, field}
    models.py     pydantic request/response bodies
    service.py    request -> manifest change (merge, atomic write, git commit) -> durable job
    app.py        FastAPI routes, the ASGI guard (auth, body cap), OpenAPI patching, serve()

The address policy (which hosts an input URL may reach) is `reconciler.sources`, shared with
the CLI's input fetching.
"""

from ..sources import resolve_host
from .allowlist import AllowedSources, ApiConfigError
from .app import create_app, serve
from .config import ApiConfig, check_exposure, is_loopback
from .service import DubbingService

__all__ = ["AllowedSources", "ApiConfig", "ApiConfigError", "DubbingService", "check_exposure",
           "create_app", "is_loopback", "resolve_host", "serve"]
