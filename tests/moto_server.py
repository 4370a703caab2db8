"""moto's S3 and CloudFront server as the suite runs it: `python tests/moto_server.py -H ... -p
...` is `python -m moto.server` without two costs it pays on every request, a fifth of its CPU
in a suite run (measured with py-spy): its dispatcher lists moto's package folder to tell a
service name from a host name (the folder does not change while it runs, so it is listed
once), and werkzeug logs each request (to /dev/null here). What it answers is moto's own."""

from __future__ import annotations

import logging

from moto import backends
from moto.server import main

_MODULES = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _MODULES
logging.getLogger("werkzeug").setLevel(logging.WARNING)

if __name__ == "__main__":
    main()
