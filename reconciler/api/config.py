"""The API server's configuration: the environment variables, the input allow-list and the
rule that it never serves without a token except on loopback."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import resolve_host
from .allowlist import AllowedSources, ApiConfigError
from .http import Limits
from .jobstore import DEFAULT_LEASE
from .webhooks import Webhook

CODE_PATTERN = r"^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$"  # the manifest schema's language code
URL_PATTERN = r"^(s3|https)://\S+$"
MAX_SECTION_ID = 2**31 - 1
MAX_LANGUAGES = 20
MAX_WAIT = 900.0
MAX_IDEMPOTENCY_KEY = 255
MAX_LISTED_JOBS = 1000
MAX_FIELD = 100  # characters of a request field's name echoed in an error
DEFAULT_MAX_BODY = 64 * 1024
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
MANIFEST_HEADER = (
    "# Written by the reconciler HTTP API (POST /api/dubbing). An ordinary manifest\n"
    "# (schemas/section.schema.json): review, edit or delete it like any other.\n"
)
DEFAULT_GIT_AUTHOR = ("reconciler-api", "reconciler-api@localhost")


# -- configuration ----------------------------------------------------------------------------


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
    git_push: str | None = None  # a remote: each manifest commit is pushed before it is applied
    git_author: tuple[str, str] = DEFAULT_GIT_AUTHOR
    max_body_bytes: int = DEFAULT_MAX_BODY
    limits: Limits = field(default_factory=Limits)  # header/body deadlines, connections
    jobs: int = 8
    dub_concurrency: int = 2
    max_dub_minutes: float | None = None  # per job: a job whose dubbing would bill more fails
    source_language: str | None = None  # spoken language when neither request nor manifest says
    resolver: Callable[[str, int], list[str]] = resolve_host
    webhook: Webhook | None = None  # job-finished callbacks
    job_store: str | None = None  # a job store URL (jobstore/); None: SQLite in data_dir
    # Seconds a replica's hold on a running job (and its apply's section lock) lasts unrenewed:
    # how soon another replica resumes the jobs of one that died.
    job_lease: float = DEFAULT_LEASE

    @classmethod
    def from_env(cls, manifests_dir: Path, data_dir: Path, **overrides: Any) -> ApiConfig:
        """RECONCILER_API_TOKEN, RECONCILER_ALLOWED_SOURCES, RECONCILER_GIT_AUTHOR_NAME,
        RECONCILER_GIT_AUTHOR_EMAIL, RECONCILER_SOURCE_LANGUAGE and RECONCILER_WEBHOOK_URL/_SECRET;
        keyword arguments win."""
        author = (os.environ.get("RECONCILER_GIT_AUTHOR_NAME") or DEFAULT_GIT_AUTHOR[0],
                  os.environ.get("RECONCILER_GIT_AUTHOR_EMAIL") or DEFAULT_GIT_AUTHOR[1])
        base: dict[str, Any] = {
            "token": os.environ.get("RECONCILER_API_TOKEN") or None,
            "allowed_sources": AllowedSources.parse(
                os.environ.get("RECONCILER_ALLOWED_SOURCES", "")),
            "git_author": author,
            "source_language": os.environ.get("RECONCILER_SOURCE_LANGUAGE", "").strip() or None,
            "webhook": Webhook.from_env(),
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

