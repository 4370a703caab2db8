"""The TLS context every HTTPS client of the process verifies servers with.

Building one parses the CA bundle (certifi's, or SSL_CERT_FILE/SSL_CERT_DIR as httpx reads
them): ~25 ms of CPU, which every httpx client paid again (the dubbing client once a run, the
remote-input fetches once a request attempt). A context is safe to share between clients and
threads, so it is built once per process; a change of SSL_CERT_FILE takes a new process.
"""

from __future__ import annotations

import ssl
from functools import cache


@cache
def context() -> ssl.SSLContext:
    """httpx's default verifying context (hostname checked, certificate required)."""
    import httpx  # only what talks HTTPS loads httpx

    return httpx.create_ssl_context()
