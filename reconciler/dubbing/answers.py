"""What ElevenLabs answers, read: its error messages and statuses, Retry-After, why a wait
ended, and the dubbed file streamed to disk under the suffix its media type says. Pure helpers
of the client (elevenlabs.py)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import CANCELLED, FAILED, WORKING, DubbingError

if TYPE_CHECKING:  # httpx is imported when a client is made: a run that dubs nothing
    import httpx  # never loads it (a fifth of a second of every start)

# The dubbed file is MP3 for audio-only input and MP4 for video input.
_DOWNLOAD_SUFFIXES = {
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "video/mp4": ".mp4",
    "audio/mp4": ".mp4",
}


def api_message(resp: httpx.Response) -> str:
    """The API's own error text from either envelope ElevenLabs uses.

    `{"detail": {"status": ..., "message": ...}}` (detail may also be a string, or FastAPI's list
    of validation errors) and the flat `{"error": ..., "message": ...}`.
    """
    try:
        body = resp.json()
    except ValueError:
        body = None
    message = _message_from_body(body)
    if message:
        return message
    text = resp.text.strip() if resp.headers.get("content-type", "").startswith("text/") else ""
    return f"HTTP {resp.status_code} {resp.reason_phrase}" + (f": {text[:200]}" if text else "")


def api_status(resp: httpx.Response) -> str | None:
    """The API's machine-readable error code (`detail.status`), e.g. concurrent_limit_exceeded."""
    try:
        body = resp.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail["status"]) if isinstance(detail, dict) and detail.get("status") else None


def why_ended(state: str, error: object) -> str:
    """Why a wait ended on a status other than dubbed or a working one."""
    if state == FAILED:
        return str(error or "dubbing failed without an error message")
    said = f": {error}" if error else ""
    if state == CANCELLED:
        return f"the dub was cancelled at ElevenLabs{said}; the next apply dubs again"
    return (f"ElevenLabs reports status {state or 'none'!r}{said}, which is neither dubbed nor "
            f"one of the working statuses ({', '.join(WORKING)}); the next apply asks again, "
            "unpaid")


def _message_from_body(body: object) -> str | None:
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or "") or None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        return "; ".join(_validation_message(item) for item in detail)
    error = body.get("error")
    if isinstance(error, dict):  # defensive: {"error": {"message": ...}}
        return _message_from_body({"detail": error})
    for key in ("message", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return body[key]
    return None


def _validation_message(item: object) -> str:
    """One FastAPI validation error, e.g. `body.target_lang: Field required`."""
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(part) for part in item.get("loc") or [])
    msg = str(item.get("msg") or item.get("message") or item)
    return f"{loc}: {msg}" if loc else msg


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None if absent/garbled."""
    raw = resp.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def stream_to_part_file(resp: httpx.Response, dest: Path) -> Path:
    """Copy the body chunk by chunk into a hidden temporary file next to `dest`."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in resp.iter_bytes():
                out.write(chunk)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return part


def media_suffix(content_type: str, written: Path) -> str:
    """.mp3 or .mp4 from the Content-Type; falls back to sniffing the bytes for odd types."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _DOWNLOAD_SUFFIXES:
        return _DOWNLOAD_SUFFIXES[mime]
    with written.open("rb") as fh:
        head = fh.read(12)
    if head[4:8] == b"ftyp":
        return ".mp4"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3"
    raise DubbingError(f"dubbed file has an unexpected Content-Type {content_type!r}")


def with_media_suffix(dest: Path, suffix: str) -> Path:
    if dest.suffix.lower() in (".mp3", ".mp4", ".m4a"):
        return dest.with_suffix(suffix)
    return dest.with_name(dest.name + suffix)
