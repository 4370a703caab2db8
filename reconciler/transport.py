"""HTTP under the address policy of sources.py: the httpx client whose connections are checked
when the socket opens, and the one retried request every remote input read goes through.

Kept apart from the policy so that only what talks HTTP loads httpx and httpcore (about a fifth
of a second): a run whose inputs are local files and S3 objects never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpcore
import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from . import tls
from .sources import STRICT, FetchError, FetchPolicy, SourceRefused

ATTEMPTS = 3  # per remote request, first try included (as S3 requests)
TIMEOUT = httpx.Timeout(30.0, read=60.0)


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, checked when the socket is opened (TLS
    still verifies, and SNI still names, the URL's host)."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable | None = None) -> httpcore.NetworkStream:
        addresses = self.policy.addresses(host, port)
        for address in addresses[:-1]:  # each checked address in turn (IPv6 may be unrouted)
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue
        return super().connect_tcp(addresses[-1], port, timeout, local_address, socket_options)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, policy: FetchPolicy) -> None:
        verify = policy.ssl_context or tls.context()
        super().__init__(verify=verify, trust_env=False)
        # httpx offers no public hook for the network backend; its connection pool takes one.
        self._pool = httpcore.ConnectionPool(ssl_context=verify,
                                             network_backend=_CheckedBackend(policy))


def client(policy: FetchPolicy = STRICT) -> httpx.Client:
    """An httpx client under the policy: no redirects, no proxies from the environment."""
    return httpx.Client(transport=_CheckedTransport(policy), follow_redirects=False,
                        trust_env=False, timeout=TIMEOUT)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _ServerBusy):
        return True
    return isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.UnsupportedProtocol)


class _ServerBusy(Exception):
    """429 or 5xx: worth asking again."""


def _answer(resp: httpx.Response, label: str) -> httpx.Response:
    if resp.is_redirect:
        raise FetchError(f"{label}: redirects are not followed (HTTP {resp.status_code})")
    if resp.status_code == 429 or resp.status_code >= 500:
        raise _ServerBusy(f"HTTP {resp.status_code}")
    if resp.status_code >= 300:
        raise FetchError(f"{label}: HTTP {resp.status_code}")
    return resp


def request(policy: FetchPolicy, method: str, url: str, label: str,
            consume: Callable[[httpx.Response], object] | None = None) -> httpx.Response:
    """One remote request under the policy and the retry policy (at most ATTEMPTS tries with
    jittered exponential backoff, on network errors, 429 and 5xx). `consume` reads a streamed
    body inside the attempt, so a broken download is retried whole. `label` names the input in
    errors (a presigned URL's signature never goes into one)."""
    def attempt() -> httpx.Response:
        with client(policy) as http, http.stream(method, url) as resp:
            _answer(resp, label)
            if consume is not None:
                consume(resp)
            return resp

    retrying = Retrying(retry=retry_if_exception(_retryable), stop=stop_after_attempt(ATTEMPTS),
                        wait=wait_random_exponential(multiplier=0.5, max=5), reraise=True)
    try:
        policy.check_url(url)
        return retrying(attempt)
    except SourceRefused as exc:
        raise SourceRefused(f"{label}: {exc}") from None
    except _ServerBusy as exc:
        raise FetchError(f"{label}: {exc} after {ATTEMPTS} attempts") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{label}: {type(exc).__name__}") from None
