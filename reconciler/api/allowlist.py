"""Which input URLs a request may name: RECONCILER_ALLOWED_SOURCES (buckets and https hosts)
checked before anything is written; the address rule itself (no loopback/private targets, checked
again at connect time) is the engine's `FetchPolicy` (reconciler.sources), shared with the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..engine import FetchPolicy, SourceRefused
from ..errors import UsageError
from ..redaction import redact
from .errors import ApiError


class ApiConfigError(UsageError):
    """The server cannot start safely with this configuration."""


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
