"""How the API meets the network: uvicorn's settings, a header-read deadline, strict JSON.

Why: uvicorn closes idle keep-alive connections, but a client that sends its request headers a
byte at a time (or nothing at all after connecting) holds a connection, and a worker's
attention, forever. `DeadlineH11Protocol` gives every request's headers a deadline; the body's
deadline is the Guard's (app.py), which reads the capped body before anything parses it; the
number of connections is uvicorn's `limit_concurrency` (beyond it: 503).

Strict JSON: Python's json keeps the last of duplicate keys, so `{"curriculumSectionId": 11,
"curriculumSectionId": 12}` would act on 12 although a reviewer of the body sees 11 first.
`duplicate_key` finds the first repeated key so the Guard can refuse the body.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 100


@dataclass(frozen=True)
class Limits:
    """Seconds a client may take to send a request's headers / body; connections at once."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers: from the connection
    (or the first byte of a keep-alive request) to the end of the headers. A client that misses
    it is disconnected. Keep-alive idling between requests stays uvicorn's own timeout."""

    header_timeout = DEFAULT_HEADER_TIMEOUT  # set per server by `protocol_for`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_header_deadline()  # a request has started (or is yet to): headers due
        else:
            self._disarm_header_deadline()  # headers complete: the body is the Guard's

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout,
                                                         self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took over %ss",
                             self.header_timeout)
            self.transport.close()


def protocol_for(limits: Limits) -> type[DeadlineH11Protocol]:
    """A protocol class with this server's header deadline (uvicorn takes a class)."""
    return type("ServerH11Protocol", (DeadlineH11Protocol,),
                {"header_timeout": limits.header_timeout})


def server_config(app: Any, limits: Limits, host: str, port: int,
                  **options: Any) -> uvicorn.Config:
    """The uvicorn settings `reconcile serve` runs with (the tests start servers with these
    very settings)."""
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits),
                          limit_concurrency=limits.max_connections, server_header=False,
                          proxy_headers=False, **options)


class DuplicateKey(Exception):
    """A JSON object names one key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def duplicate_key(body: bytes) -> str | None:
    """The first key some object of this JSON body repeats; None when there is none, or when
    the body is not JSON at all (that is the route's own 400)."""
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except DuplicateKey as dup:
        return dup.key
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None  # not JSON (or nested beyond the parser): the route's own 400
    return None
