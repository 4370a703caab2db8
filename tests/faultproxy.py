"""A fault-injecting HTTP proxy in front of the moto server: S3 and CloudFront that misbehave
the way the real ones do, on purpose and reproducibly.

It is a real HTTP/1.1 server (stdlib ThreadingHTTPServer in a daemon thread, 127.0.0.1, port 0)
that forwards every request (method, path and query, headers, the body streamed whether it came
with Content-Length or chunked, aws-chunked payloads and multipart parts alike) to moto with
http.client and relays moto's answer untouched, its errors included. Instead of forwarding it
may answer with an injected fault:

    rate                   share (0..1) of S3 requests answered with a random fault from `kinds`:
                           "500" InternalError, "503" SlowDown (S3's XML error body), or
                           "reset" (the socket is closed with SO_LINGER 0: a real RST, no answer)
    seed                   every decision is drawn from `random.Random(f"{seed}:{request}")`,
                           where `request` is the method, the object key and query (minus the
                           bucket and the random uploadId) and how many times that request was
                           seen before, so a seed gives the same faults in any bucket, whatever
                           order the worker threads send in
    rules                  targeted faults: `Rule(method, path regex, action)`, where action is a
                           status code, "reset", "drop" (forward, then reset: the request took
                           effect but its answer is lost) or "pass"; optionally only the first
                           `times` matches after letting `skip` through, after a `delay`, with a
                           `hook` called first (e.g. to change the bucket under the request); a
                           request still held when the proxy stops never reaches moto
    too_many_invalidations the first N CloudFront CreateInvalidation calls are answered 400
                           TooManyInvalidationsInProgress (moto never says so)
    hold_invalidations     invalidations created stay InProgress (moto completes them at once)
                           until `complete_invalidations()`: ListInvalidations and
                           GetInvalidation say so

CloudFront's published contract, which moto does not keep, is kept here for CreateInvalidation:
a request that would put more than 15 wildcard paths or 3,000 file paths in progress (counting
the held ones) is answered TooManyInvalidationsInProgress; the same CallerReference with the
same paths returns the invalidation already created (never a second), with other paths it is
409 InvalidationBatchAlreadyExists.

Observations (all under one lock): `seen` (every request and what happened to it), `attempts`
per (method, object key), `faults` injected, `invalidations_forwarded` (CreateInvalidation calls
that reached moto), `invalidation_refs` (time and CallerReference of every CreateInvalidation
the proxy saw) and `invalidation_batches` (the CallerReference and paths of each). botocore's
`amz-sdk-invocation-id` header groups the attempts of one logical request (`invocations()`),
`amz-sdk-request: attempt=N` numbers them.

The proxy's own health check (GET /__faultproxy__/health) is answered by the proxy and never
faulted; moto's control API (/moto-api/) is forwarded but never faulted. `stop()` (or the
context manager) shuts the listener and every connection still open, so it serves only the test
that started it. `reachable_from_master` (at the end) is the check the suites share: everything
a player can reach from master exists with the metadata table's headers.

    with FaultProxy(moto_url, rate=0.15, seed=7) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        ...
        assert max(proxy.attempts.values()) <= 3
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from local_server import LocalServer

HEALTH_PATH = "/__faultproxy__/health"
INVALIDATION = re.compile(r"^/20\d\d-\d\d-\d\d/distribution/(?P<id>[^/]+)/invalidation$")
INVALIDATION_ONE = re.compile(r"^/20\d\d-\d\d-\d\d/distribution/[^/]+/invalidation/[^/]+$")
CLOUDFRONT = re.compile(r"^/20\d\d-\d\d-\d\d/")
CALLER_REFERENCE = re.compile(rb"<CallerReference>([^<]*)</CallerReference>")
PATH_ITEM = re.compile(rb"<Path>([^<]*)</Path>")
INVALIDATION_ID = re.compile(rb"<Id>([^<]*)</Id>")
SUMMARY = re.compile(rb"<(InvalidationSummary|Invalidation)>(.*?)</\1>", re.S)
STATUS = re.compile(rb"<Status>[^<]*</Status>")
WILDCARD_QUOTA, FILE_QUOTA = 15, 3000  # paths in progress per distribution
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "expect"}
S3_ERRORS = {
    400: ("BadRequest", "An error occurred when parsing the HTTP request."),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    409: ("OperationAborted", "A conflicting conditional operation is in progress."),
    412: ("PreconditionFailed", "At least one of the preconditions you specified did not hold."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}
FAULT_KINDS = ("500", "503", "reset")
CHUNK = 64 * 1024


@dataclass
class Rule:
    """A targeted fault: requests whose method (or "*") and path (regex, searched in the
    unquoted path without the query) match get `action` instead of a plain forward."""

    method: str
    path: str
    action: int | str = 500  # status code, "reset", "drop" or "pass"
    times: int | None = None  # act on only this many matches (None: every one)
    skip: int = 0  # let this many matches through untouched first
    delay: float = 0.0  # seconds to hold the request first (interrupted by stop())
    hook: Callable[[Seen], None] | None = None  # called before the action
    matched: int = 0  # observations: matches seen, and how many were acted on
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and re.search(self.path, path) is not None


@dataclass
class Seen:
    """One request the proxy received, and what became of it."""

    at: float
    method: str
    path: str  # unquoted, without the query
    query: str
    key: str  # the object key (path minus the bucket), "" for bucket-level requests
    invocation: str | None  # botocore's amz-sdk-invocation-id: one per logical request
    attempt: int | None  # botocore's amz-sdk-request attempt=N
    outcome: str = ""  # "forwarded 200", "fault 503", "fault reset", "fault drop", ...
    headers: dict[str, str] = field(default_factory=dict)
    deleting: list[str] = field(default_factory=list)  # keys a DeleteObjects body names

    @property
    def faulted(self) -> bool:
        return self.outcome.startswith("fault")


@dataclass(frozen=True)
class Fault:
    at: float
    method: str
    key: str
    kind: str  # "500", "503", "reset", "drop", "TooManyInvalidationsInProgress", or a status


class FaultProxy(LocalServer):
    def __init__(self, upstream: str, *, rate: float = 0.0, seed: int = 0,
                 kinds: tuple[str, ...] = FAULT_KINDS, rules: list[Rule] | None = None,
                 too_many_invalidations: int = 0, hold_invalidations: bool = False,
                 timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream!r}")
        if not 0 <= rate <= 1:
            raise ValueError("rate must be within 0..1")
        super().__init__(_Handler, "faultproxy", _Server)
        self.upstream = (parts.hostname, parts.port or 80)
        # knobs (may be changed between requests)
        self.rate = rate
        self.seed = seed
        self.kinds = tuple(kinds)
        self.rules: list[Rule] = list(rules or [])
        self.too_many_invalidations = too_many_invalidations
        self.hold_invalidations = hold_invalidations
        self.timeout = timeout
        # observations
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.invalidations_forwarded = 0
        self.invalidation_refs: list[tuple[float, str]] = []
        self.invalidation_batches: list[tuple[str, list[str]]] = []
        self.held: dict[str, list[str]] = {}  # invalidation id -> paths, still InProgress
        self._created: dict[str, tuple[list[str], int, list[tuple[str, str]], bytes]] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        super().start()
        address = urlsplit(self.url)
        deadline = time.monotonic() + 10
        while True:  # the health check: the proxy answers, never faulted
            try:
                conn = http.client.HTTPConnection(address.hostname, address.port, timeout=2)
                conn.request("GET", HEALTH_PATH)
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fault proxy did not come up")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._stopping.set()
        super().stop()
        with self._lock:
            open_now = list(self._connections)
        for sock in open_now:  # keep-alive connections would otherwise outlive the test
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def reset_observations(self) -> None:
        """Forget what was seen (knobs, rule counters and the seeded sequence are kept)."""
        with self._lock:
            self.seen.clear()
            self.faults.clear()
            self.invalidations_forwarded = 0
            self.invalidation_refs.clear()
            self.invalidation_batches.clear()

    def complete_invalidations(self) -> None:
        """Every held invalidation completes (its quota is free again)."""
        with self._lock:
            self.held.clear()

    # -- observations ------------------------------------------------------------------------

    @property
    def attempts(self) -> Counter[tuple[str, str]]:
        """(method, object key) -> requests received (forwarded and faulted)."""
        with self._lock:
            return Counter((s.method, s.key) for s in self.seen)

    def invocations(self) -> dict[str, list[Seen]]:
        """botocore invocation id -> its attempts, in order (requests without one left out)."""
        out: dict[str, list[Seen]] = {}
        with self._lock:
            for s in self.seen:
                if s.invocation:
                    out.setdefault(s.invocation, []).append(s)
        return out

    def exhausted(self) -> list[list[Seen]]:
        """Logical requests whose every attempt was faulted (the caller saw the error)."""
        return [tries for tries in self.invocations().values()
                if all(t.faulted for t in tries)]

    # -- request handling --------------------------------------------------------------------

    def handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = unquote(split.path)
        if h.command == "GET" and path == HEALTH_PATH:
            _reply(h, 200, b"ok", "text/plain")
            return
        seen = self._record(h, path, split.query)
        body = None
        if h.command == "POST" and "delete" in dict(parse_qsl(split.query,
                                                             keep_blank_values=True)):
            body = _read_all(h)  # a small XML list of keys: worth naming them
            seen.deleting = [unquote(k.decode()) for k in re.findall(rb"<Key>([^<]*)</Key>", body)]
        rule = self._rule_for(h.command, path)
        if rule is not None:
            if rule.hook is not None:
                rule.hook(seen)
            if rule.delay:
                self._stopping.wait(rule.delay)
            if self._stopping.is_set():  # held until the proxy stopped: it never arrives
                seen.outcome = "stopped"
                _reset(h)
                return
            if rule.action != "pass":
                self._fault(h, seen, rule.action, body=body)
                return
        if INVALIDATION.match(path) and h.command == "POST":
            self._invalidation(h, seen)
            return
        if h.command == "GET" and (INVALIDATION.match(path) or INVALIDATION_ONE.match(path)):
            self._cloudfront_read(h, seen)
            return
        kind = self._roll(seen)
        if kind is not None:
            self._fault(h, seen, kind, body=body)
            return
        self._forward(h, seen, body=body)

    def _record(self, h: _Handler, path: str, query: str) -> Seen:
        invocation = h.headers.get("amz-sdk-invocation-id")
        attempt = re.search(r"attempt=(\d+)", h.headers.get("amz-sdk-request", ""))
        if CLOUDFRONT.match(path) or path.startswith("/moto-api"):
            key = path
        else:
            key = path.lstrip("/").split("/", 1)[1] if path.count("/") >= 2 else ""
        seen = Seen(time.monotonic(), h.command, path, query, key, invocation,
                    int(attempt.group(1)) if attempt else None,
                    headers={k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.seen.append(seen)
        return seen

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.matched += 1
                if rule.matched <= rule.skip:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                rule.fired += 1
                return rule
        return None

    def _roll(self, seen: Seen) -> str | None:
        """The seeded decision for this request: a fault kind, or None to forward it."""
        if (not self.rate or CLOUDFRONT.match(seen.path) or seen.path.startswith("/moto-api")):
            return None
        stable = urlencode(sorted((k, v) for k, v in parse_qsl(seen.query, keep_blank_values=True)
                                  if k != "uploadId"))
        request = f"{seen.method} /{seen.key}?{stable}"  # not the bucket: tests make fresh ones
        with self._lock:
            nth = self._counts[request]
            self._counts[request] += 1
        rng = random.Random(f"{self.seed}:{request}:{nth}")
        if rng.random() >= self.rate:
            return None
        return rng.choice(self.kinds)

    def _fault(self, h: _Handler, seen: Seen, kind: int | str, *,
               body: bytes | None = None) -> None:
        kind = str(kind)
        with self._lock:
            self.faults.append(Fault(time.monotonic(), seen.method, seen.key, kind))
        seen.outcome = f"fault {kind}"
        if kind == "drop":  # it reaches moto; the answer never reaches the client
            if seen.method == "POST" and INVALIDATION.match(seen.path):
                self._invalidation(h, seen, relay=False)
            else:
                self._forward(h, seen, body=body, relay=False)
            seen.outcome = f"fault {kind}"
            _reset(h)
            return
        if body is None:
            _drain(h)
        if kind == "reset":
            _reset(h)
            return
        status = int(kind)
        code, message = S3_ERRORS.get(status, (f"Injected{status}", "Injected fault."))
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>{uuid.uuid4().hex[:16].upper()}"
                "</RequestId></Error>").encode()
        _reply(h, status, body, "application/xml", head=h.command == "HEAD")

    def _invalidation(self, h: _Handler, seen: Seen, *, relay: bool = True) -> None:
        """CreateInvalidation under CloudFront's contract (see the module's docstring)."""
        body = _read_all(h)
        found = CALLER_REFERENCE.search(body)
        ref = found.group(1).decode() if found else ""
        paths = [unquote(p.decode()) for p in PATH_ITEM.findall(body)]
        wildcards = sum(p.endswith("*") for p in paths)
        with self._lock:
            self.invalidation_refs.append((seen.at, ref))
            self.invalidation_batches.append((ref, paths))
            before = self._created.get(ref)
            held = [p for batch in self.held.values() for p in batch]
            held_wildcards = sum(p.endswith("*") for p in held)
            over = (held_wildcards + wildcards > WILDCARD_QUOTA
                    or len(held) - held_wildcards + len(paths) - wildcards > FILE_QUOTA)
            refuse = before is None and (self.too_many_invalidations > 0 or over)
            if refuse and not over:
                self.too_many_invalidations -= 1
            if refuse:
                self.faults.append(Fault(time.monotonic(), seen.method, seen.key,
                                         "TooManyInvalidationsInProgress"))
        if before is not None:  # the same CallerReference: the same invalidation, or refused
            same, status, headers, answer = before
            if same != paths:
                seen.outcome = "refused InvalidationBatchAlreadyExists"
                _reply(h, 409, _cloudfront_error("InvalidationBatchAlreadyExists",
                                                 "Batch already exists."), "text/xml")
                return
            seen.outcome = f"replayed {status}"
            _relay(h, status, headers, answer)
            return
        if refuse:
            seen.outcome = "fault TooManyInvalidationsInProgress"
            _reply(h, 400, _cloudfront_error(
                "TooManyInvalidationsInProgress", "Processing your request will cause you to "
                "exceed the maximum number of in-progress wildcard invalidations."), "text/xml")
            return
        status, headers, answer = self._exchange(h, body)
        seen.outcome = f"forwarded {status}"
        if status == 201:
            ident = INVALIDATION_ID.search(answer)
            with self._lock:
                self.invalidations_forwarded += 1
                self._created[ref] = (paths, status, headers, answer)
                if self.hold_invalidations and ident:
                    self.held[ident.group(1).decode()] = paths
        if relay:
            _relay(h, status, headers, answer)

    def _exchange(self, h: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one small request to moto and read its whole answer."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=self.timeout)
        try:
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for name, value in h.headers.items():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in HOP_BY_HOP | {"content-length"}]
            return resp.status, headers, resp.read()
        finally:
            conn.close()

    def _cloudfront_read(self, h: _Handler, seen: Seen) -> None:
        """ListInvalidations / GetInvalidation, with the held invalidations InProgress."""
        status, headers, answer = self._exchange(h, b"")
        with self._lock:
            held = set(self.held)

        def with_status(block: re.Match[bytes]) -> bytes:
            ident = INVALIDATION_ID.search(block.group(0))
            state = b"InProgress" if ident and ident.group(1).decode() in held else b"Completed"
            return STATUS.sub(b"<Status>" + state + b"</Status>", block.group(0))

        answer = SUMMARY.sub(with_status, answer)
        seen.outcome = f"forwarded {status}"
        _relay(h, status, headers, answer)

    def _forward(self, h: _Handler, seen: Seen, *, body: bytes | None = None,
                 relay: bool = True) -> None:
        conn = http.client.HTTPConnection(*self.upstream, timeout=self.timeout)
        try:
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            chunked = "chunked" in h.headers.get("transfer-encoding", "").lower()
            for name, value in h.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            if body is not None:
                if "content-length" not in {k.lower() for k in h.headers}:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
            elif chunked:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for chunk in _chunks(h):
                    conn.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            else:
                conn.endheaders()
                left = int(h.headers.get("content-length") or 0)
                while left > 0:  # streamed: never more than CHUNK bytes in hand
                    data = h.rfile.read(min(CHUNK, left))
                    if not data:
                        raise ConnectionError("client closed mid-body")
                    conn.send(data)
                    left -= len(data)
            resp = conn.getresponse()
            seen.outcome = f"forwarded {resp.status}"
            if seen.method == "POST" and INVALIDATION.match(seen.path):
                with self._lock:
                    self.invalidations_forwarded += 1
            if not relay:
                resp.read()
                return
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            length = resp.getheader("content-length")
            no_body = h.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
            h.send_response_only(resp.status, resp.reason)
            if no_body or length is not None:
                for k, v in headers:
                    h.send_header(k, v)
                h.end_headers()
                if not no_body:
                    while data := resp.read(CHUNK):
                        h.wfile.write(data)
            else:  # upstream streamed without a length: relay it whole, with one
                data = resp.read()
                for k, v in headers:
                    if k.lower() != "content-length":
                        h.send_header(k, v)
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
        except (OSError, http.client.HTTPException) as err:
            # Not injected: moto unreachable or the client vanished. Say so and close.
            seen.outcome = f"proxy error {type(err).__name__}"
            h.close_connection = True
            with contextlib.suppress(OSError):
                _reply(h, 502, f"fault proxy: upstream failed: {err}".encode(), "text/plain")
        finally:
            conn.close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (or a connection we reset) is not worth a traceback."""
        err = sys.exc_info()[1]
        if not isinstance(err, OSError | ValueError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects

    def setup(self) -> None:
        super().setup()
        proxy: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        with proxy._lock:
            proxy._connections.add(self.connection)

    def finish(self) -> None:
        proxy: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        with proxy._lock:
            proxy._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _serve(self) -> None:
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _chunks(h: BaseHTTPRequestHandler) -> Iterator[bytes]:
    """The decoded chunks of a Transfer-Encoding: chunked body (trailers skipped)."""
    while True:
        line = h.rfile.readline(1024)
        if not line:
            raise ConnectionError("client closed mid-body")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while h.rfile.readline(1024).strip():
                pass
            return
        left = size
        while left > 0:
            data = h.rfile.read(min(CHUNK, left))
            if not data:
                raise ConnectionError("client closed mid-body")
            left -= len(data)
            yield data
        h.rfile.readline(16)  # CRLF after the chunk


def _drain(h: BaseHTTPRequestHandler) -> None:
    """Consume the request body (so a keep-alive connection stays in step)."""
    if "chunked" in h.headers.get("transfer-encoding", "").lower():
        for _ in _chunks(h):
            pass
        return
    left = int(h.headers.get("content-length") or 0)
    while left > 0:
        data = h.rfile.read(min(CHUNK, left))
        if not data:
            return
        left -= len(data)


def _read_all(h: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in h.headers.get("transfer-encoding", "").lower():
        return b"".join(_chunks(h))
    return h.rfile.read(int(h.headers.get("content-length") or 0))


def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, *,
           head: bool = False) -> None:
    h.send_response_only(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
    h.end_headers()
    if not head:
        h.wfile.write(body)


def _relay(h: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]],
           body: bytes) -> None:
    h.send_response_only(status)
    for name, value in headers:
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _cloudfront_error(code: str, message: str) -> bytes:
    return ('<?xml version="1.0"?>\n<ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/'
            f'2020-05-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}'
            f"</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Close the connection without an answer: SO_LINGER 0 makes the close send a RST."""
    h.close_connection = True
    sock = h.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.rfile.close()  # the makefile reference would otherwise keep the descriptor open
        sock.close()
    except OSError:
        pass


# -- a check the break-things suites share ---------------------------------------------------

ASSETS = "assets/curriculumsection"


def reachable_from_master(s3, bucket: str, section_id: int) -> tuple[dict[str, dict], list[str]]:
    """HEAD everything a player can reach from the section's master (master, playlists, init
    and segments): {key: head} and the problems found (missing objects, headers that are not
    the table's: Content-Type, Cache-Control, SSE AES256). No master: nothing is reachable."""
    from botocore.exceptions import ClientError

    from reconciler import layout

    root = f"{ASSETS}/{section_id}/"
    heads: dict[str, dict] = {}
    problems: list[str] = []

    def head(key: str) -> bool:
        try:
            got = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            problems.append(f"{key}: {err.response['Error'].get('Code')}")
            return False
        heads[key] = got
        want = layout.meta_for(key)
        seen = (got.get("ContentType"), got.get("CacheControl"), got.get("ServerSideEncryption"))
        if want is None or seen != (want.content_type, want.cache_control, "AES256"):
            problems.append(f"{key}: headers {seen}, table says {want}")
        return True

    def uris(text: str) -> list[str]:
        found = re.findall(r'URI="([^"]+)"', text)
        return found + [ln.strip() for ln in text.splitlines()
                        if ln.strip() and not ln.startswith("#")]

    try:
        master = s3.get_object(Bucket=bucket, Key=root + "master.m3u8")["Body"].read().decode()
    except ClientError as err:
        if err.response["Error"].get("Code") in ("NoSuchKey", "404"):
            return heads, problems
        raise
    head(root + "master.m3u8")
    for playlist in dict.fromkeys(uris(master)):
        key = root + playlist
        if not head(key):
            continue
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        directory = key.rsplit("/", 1)[0] + "/"
        for uri in dict.fromkeys(uris(text)):
            head(directory + uri)
    return heads, problems
