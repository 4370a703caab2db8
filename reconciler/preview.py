"""`reconcile preview`: serve a store the way CloudFront serves the bucket, plus a player page.

Objects are served at `/{key}` with the headers the CDN would return: Content-Type and
Cache-Control come from the object's *stored* metadata (a wrongly stored object shows wrong
headers here exactly as it would through CloudFront), plus ETag, Content-Length, Last-Modified,
`Accept-Ranges: bytes` and the CORS headers of the bucket's CORS rule (the request's Origin is
echoed). HEAD, GET with a single byte range, and OPTIONS preflights are supported.

Three extra paths make it a local test bench for the front end:
  /                       status board of the sections under assets/curriculumsection/
  /player.html?section=ID the example hls.js player (reconciler/player.html)
  /hls.min.js             hls.js, shipped inside this package (reconciler/static/, pinned version)
"""

from __future__ import annotations

import html
import re
import sys
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import layout
from .redaction import one_line
from .store import ObjectInfo, Store, StoreError

PLAYER_FILE = Path(__file__).with_name("player.html")
# Package data, so the player works from a wheel, pipx or the image without npm; the version
# and Apache-2.0 licence sit beside it. tests/test_packaging.py checks it is byte-identical to
# the npm package of that version.
HLSJS_FILE = Path(__file__).parent / "static" / "hls.min.js"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 answers for an object stored without one
ALLOWED_METHODS = "GET, HEAD, OPTIONS"
EXPOSED_HEADERS = "Content-Length, Content-Range, ETag"
CORS_MAX_AGE = "3000"

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """A single `bytes=` range as (first, last) inclusive; None to ignore the header (malformed
    or several ranges: serve the whole object, as RFC 9110 allows); "unsatisfiable" for 416."""
    match = _RANGE.match(header.strip())
    if not match:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if size == 0:
        return "unsatisfiable"
    if not first_s:  # suffix range: the last N bytes
        length = int(last_s)
        if length == 0:
            return "unsatisfiable"
        return max(size - length, 0), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # syntactically invalid: ignored
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


def is_traversal(raw_path: str) -> bool:
    """A `..` segment in the path, raw, percent-decoded once or twice."""
    once = unquote(raw_path)
    return any(
        ".." in candidate.replace("\\", "/").split("/")
        for candidate in (raw_path, once, unquote(once))
    )


def object_key(raw_path: str) -> str | None:
    """The store key a request path names, or None when the path is not a safe key (dot
    segments, encoded or not, empty segments, backslashes, NULs, the store's .meta tree)."""
    decoded = unquote(raw_path)
    for candidate in (raw_path, decoded):
        if not candidate.startswith("/"):
            return None
        parts = candidate[1:].split("/")
        if any(p in ("", ".", "..") for p in parts):
            return None
        if "\\" in candidate or "\x00" in candidate or parts[0].startswith("."):
            return None
    key = decoded[1:]
    if unquote(key) != key:  # double encoding (%252e%252e) is refused too
        return None
    return key


def section_ids(store: Store) -> list[int]:
    """Sections that have a master playlist in the store."""
    ids = set()
    for key in store.list(layout.ASSETS_ROOT + "/"):
        section = layout.section_of(key)
        if section is not None and key == layout.master_key(section):
            ids.add(section)
    return sorted(ids)


def _index_page(store: Store) -> bytes:
    """The status board of the store: a row per section, a column per language."""
    from . import board
    from .observe import observe

    table = board.html_table(board.from_observed(observe(store, [], extra_ids=section_ids(store))))
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<title>Lecture preview</title>\n"
        "<style>body{font:16px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;"
        "padding:0 1rem}table{border-collapse:collapse}th,td{border:1px solid #ccc;"
        "padding:.25rem .5rem;text-align:left}</style>\n</head>\n<body>\n"
        "<h1>Lecture preview</h1>\n"
        f"<p>Store: <code>{html.escape(store.url)}</code></p>\n{table}\n</body>\n</html>\n"
    ).encode()


class PreviewHandler(BaseHTTPRequestHandler):
    """Serves one store; `server.store` is set by make_server."""

    protocol_version = "HTTP/1.1"
    server_version = "reconciler-preview"
    sys_version = ""
    server: PreviewServer

    # -- dispatch ----------------------------------------------------------------------------
    def __getattr__(self, name: str):
        # Any other method (POST, PUT, DELETE, PATCH, ...) is 405, as CloudFront answers
        # when the distribution only allows GET/HEAD/OPTIONS.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_OPTIONS(self) -> None:
        origin = self.headers.get("Origin")
        self.send_response(HTTPStatus.OK)
        self.send_header("Allow", ALLOWED_METHODS)
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
            requested = self.headers.get("Access-Control-Request-Headers")
            if requested:
                self.send_header("Access-Control-Allow-Headers", requested)
            self.send_header("Access-Control-Max-Age", CORS_MAX_AGE)
            self.send_header("Vary", "Origin")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _method_not_allowed(self) -> None:
        self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed\n",
                    {"Allow": ALLOWED_METHODS})

    # -- responses ---------------------------------------------------------------------------
    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)
        self.send_header("Vary", "Origin")

    def _plain(self, status: HTTPStatus, text: str, extra: dict[str, str] | None = None,
               content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self._cors()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            try:
                page = _index_page(self.server.store).decode()
            except StoreError as err:
                self._store_error("the section list", err)
                return
            self._plain(HTTPStatus.OK, page, content_type="text/html; charset=utf-8")
            return
        if path == "/player.html":
            self._plain(HTTPStatus.OK, PLAYER_FILE.read_text(encoding="utf-8"),
                        content_type="text/html; charset=utf-8")
            return
        if path == "/hls.min.js":
            self._hlsjs(head)
            return
        if is_traversal(path):
            self._plain(HTTPStatus.BAD_REQUEST, "bad request: path traversal\n")
            return
        key = object_key(path)
        if key is None:
            self._plain(HTTPStatus.NOT_FOUND, "not found\n")
            return
        self._object(key, head)

    def _store_error(self, what: str, err: StoreError) -> None:
        """The store failing (or refusing a path) is not a missing object: 502, one line."""
        self._plain(HTTPStatus.BAD_GATEWAY, f"store error reading {what}: {one_line(err)}\n")

    def _hlsjs(self, head: bool) -> None:
        body = HLSJS_FILE.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _object(self, key: str, head: bool) -> None:
        store = self.server.store
        try:
            if head:
                info, body = store.head(key), None
            else:
                got = store.get(key)
                info, body = (got[1], got[0]) if got else (None, None)
        except StoreError as err:
            self._store_error(key, err)
            return
        if info is None:
            self._plain(HTTPStatus.NOT_FOUND, f"no such key: {key}\n")
            return

        etag = f'"{info.etag}"'
        if etag in [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self._object_headers(info, etag)
            self.end_headers()
            return

        size = len(body) if body is not None else info.size
        status, first, last = HTTPStatus.OK, 0, size - 1
        range_header = self.headers.get("Range")
        if range_header:
            wanted = parse_range(range_header, size)
            if wanted == "unsatisfiable":
                self._plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                            "requested range not satisfiable\n",
                            {"Content-Range": f"bytes */{size}"})
                return
            if isinstance(wanted, tuple):
                status, (first, last) = HTTPStatus.PARTIAL_CONTENT, wanted

        self.send_response(status)
        self._object_headers(info, etag)
        self.send_header("Content-Length", str(last - first + 1 if size else 0))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if body is not None:
            self.wfile.write(body[first : last + 1])

    def _object_headers(self, info: ObjectInfo, etag: str) -> None:
        served = info.meta.headers(served=True) if info.meta else {}
        self.send_header("Content-Type", served.pop("Content-Type", "") or DEFAULT_CONTENT_TYPE)
        for name, value in served.items():  # Cache-Control, ...: only those it was stored with
            if value:
                self.send_header(name, value)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified",
                         formatdate(info.last_modified.timestamp(), usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        self._cors()

    def log_message(self, format: str, *args) -> None:
        if self.server.log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: Store, *, log: bool = False,
                 handler: type[BaseHTTPRequestHandler] = PreviewHandler) -> None:
        self.store = store
        self.log = log
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_error(self, request, client_address) -> None:
        # Players abort requests all the time (seek, audio switch); a reset is not an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def make_server(store: Store, host: str = "127.0.0.1", port: int = 0, *, log: bool = False,
                handler: type[BaseHTTPRequestHandler] = PreviewHandler) -> PreviewServer:
    """A threaded HTTP server for the store, bound but not yet serving (call serve_forever).
    port=0 picks a free port; `server.url` tells which."""
    return PreviewServer((host, port), store, log=log, handler=handler)


def serve(store: Store, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(store, host, port, log=True)
    sys.stderr.write(f"preview of {store.url} at {server.url}/ (Ctrl-C to stop)\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
