"""The one redaction every printed URL and message goes through (CLI errors, plan and apply
output, verify's report, the API's messages, manifest errors, dubbing errors).

A URL loses its `user:password@` and its query string (a presigned URL's signature lives
there); any secret passed in (the ElevenLabs key) is removed in whatever case it appears.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"?#]*@")
_QUERY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s'\"?#]*)\?[^\s'\"#]*")
REDACTED = "[redacted]"


def redact(text: str, *secrets: str) -> str:
    """`text` safe to print: URLs without credentials or query, and no secret in any case."""
    for secret in secrets:
        if secret:
            text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    return _QUERY.sub(r"\1?…", _USERINFO.sub(r"\1…@", text))


def one_line(err: BaseException) -> str:
    """An error as one safe line for a client: its first line (redacted), or its type's name
    when it says nothing."""
    text = str(err).strip()
    return redact(text.splitlines()[0]) if text else type(err).__name__
