"""The one address policy for fetching remote inputs (videos, supplied dubs) over the network.

Every remote input the reconciler reads over HTTP goes through `transport.client(policy)`:
https only, no redirects, and the address actually connected to is checked **at connect time**
(the host is resolved once, every address it resolves to must be public, and the socket connects
to that checked address), so DNS rebinding between a check and the fetch cannot reach loopback,
private, link-local or metadata addresses. ffmpeg and ffprobe never fetch anything: inputs are
downloaded through this client first and the tools read local files only (media.py).

The CLI and the HTTP API share it; the API adds its allow-list on top (api/allowlist.py). The
only way to relax the policy is to construct a `FetchPolicy` in code (the tests' loopback
servers do): no environment variable or flag does, so a production process cannot be talked
into it.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import ReconcilerError


class FetchError(ReconcilerError):
    """A remote input could not be fetched (after retries); the message carries no secret."""


class SourceRefused(FetchError):
    """The policy forbids this URL or the address it resolves to; never retried."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host resolves to (what a connection could go to)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def address_refused(address: str) -> str | None:
    """Why connecting to this address is refused (loopback, private, link-local - which holds
    the cloud metadata service -, ...), or None when it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                       ("is_unspecified", "unspecified"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return what
    if not ip.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class FetchPolicy:
    """What remote fetches may reach: https only, always. The default is the production policy;
    `exempt_addresses` and `ssl_context` (trusting a test CA) exist so a test can reach its own
    loopback server, explicitly and in code."""

    exempt_addresses: frozenset[str] = frozenset()
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    resolver: Callable[[str, int], list[str]] = field(default=resolve_host, compare=False)

    def check_url(self, url: str) -> None:
        """Refuse a URL by its shape: scheme, embedded credentials, missing host."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "https":
            raise SourceRefused("only https inputs are fetched")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise SourceRefused("URL must not embed credentials (user:password@)")
        if not parts.hostname:
            raise SourceRefused("URL has no host")

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, all of them allowed; SourceRefused otherwise."""
        try:
            found = [str(ipaddress.ip_address(host.strip("[]")))]
            verb = "is"
        except ValueError:
            verb = "resolves to"
            try:
                found = self.resolver(host, port)
            except (OSError, UnicodeError):
                raise SourceRefused(f"cannot resolve {host}") from None
        if not found:
            raise SourceRefused(f"cannot resolve {host}")
        for address in found:
            if address in self.exempt_addresses:
                continue
            try:
                why = address_refused(address)
            except ValueError:
                why = "unparsable"
            if why:
                raise SourceRefused(f"{host} {verb} a {why} address ({address}); refused")
        return found


STRICT = FetchPolicy()
