"""The tests' own HTTP servers (the fake ElevenLabs, the fault proxy): a real stdlib
ThreadingHTTPServer on 127.0.0.1, on a free port, served from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalServer:
    """What the servers share: `start()` (returns the server, its `url` set), `stop()`, and
    `with` for both. A request handler reaches the server object as `self.server.owner`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str,
                 server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> None:
        self.url = ""  # http://127.0.0.1:PORT once started
        self._handler = handler
        self._name = name
        self._server_class = server_class
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._server = self._server_class(("127.0.0.1", 0), self._handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
