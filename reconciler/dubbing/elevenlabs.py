"""The Dubber (dubbing/__init__.py) against ElevenLabs' Dubbing API: upload a lecture's audio,
wait for the dub, stream it to disk.

Only the (v1) endpoints the reconciler needs are wrapped (the contract is the official `elevenlabs`
Python SDK 2.78.0 and its OpenAPI document; tests/elevenlabs_contract.json keeps the subset used):

    POST /v1/dubbing                          create a dub (multipart upload) -> dubbing_id
    GET  /v1/dubbing                          the account's dubs, paged (cursor, page_size <= 200,
                                              order_by/order_direction): finds a dub by name
    GET  /v1/dubbing/{id}                     metadata; `status` is queued/preparing/dubbing
                                              (working), then `dubbed` or `failed` (with `error`)
    GET  /v1/dubbing/{id}/audio/{code}        the dubbed track (MP3, or MP4 for video input);
                                              425 while the dub is not finished
    GET  /v1/dubbing/{id}/transcript/{code}   ?format_type=webvtt: the dub's transcript

Language codes are ElevenLabs' (ISO 639-1/639-3, dubbing_languages.py), never BCP 47 tags.
Retries live here so callers can treat every method as "it worked, or a DubbingError says why":
429, 425, 5xx and network failures are retried with jittered exponential backoff that honours
Retry-After; any other 4xx fails at once with the API's own message. The one exception is the
billable create: once a create may have reached ElevenLabs (a 5xx, a timeout, a dropped
connection) it is never sent again here; CreateUnknown says so and `find` tells whether it was
accepted. A 429 for the account's concurrency limit is waited out (the create was refused, so
nothing is paid) for up to `slot_timeout`. The API key is sent in the `xi-api-key` header and is
scrubbed from every message this module produces, because error texts end up in CI logs.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from .. import tls
from ..redaction import redact
from . import DUBBED, WORKING, CreateUnknown, DubbingError
from .answers import (
    api_message,
    api_status,
    media_suffix,
    retry_after_seconds,
    stream_to_part_file,
    why_ended,
    with_media_suffix,
)

if TYPE_CHECKING:  # httpx is imported when a client is made: a run that dubs nothing
    import httpx  # never loads it (a fifth of a second of every start)

__all__ = ["DEFAULT_BASE_URL", "ElevenLabs"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"

# 429 `detail.status` for the account's concurrent-dub limit (the API has used both names).
CONCURRENCY_LIMITS = ("concurrent_limit_exceeded", "too_many_concurrent_requests")
LIST_PAGE_SIZE = 200  # the most GET /v1/dubbing returns per page

# Upload Content-Type by suffix; the API sniffs media itself, but a right type avoids surprises.
_UPLOAD_TYPES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
}
T = TypeVar("T")


class _Retryable(Exception):
    """An answer worth asking again (425, 429, 5xx); converted to DubbingError before leaving."""

    def __init__(self, status_code: int, reason: str, retry_after: float | None,
                 code: str | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {reason}")
        self.status_code = status_code
        self.reason = reason
        self.retry_after = retry_after
        self.code = code  # the API's `detail.status`, e.g. concurrent_limit_exceeded

    @property
    def no_free_slot(self) -> bool:
        """The account's concurrent dubs are all busy: refused, not paid; wait for a slot."""
        return self.status_code == 429 and self.code in CONCURRENCY_LIMITS


def _is_retryable(exc: BaseException) -> bool:
    """Retry API back-pressure and network trouble, not a malformed URL."""
    import httpx

    if isinstance(exc, httpx.UnsupportedProtocol):
        return False
    return isinstance(exc, _Retryable | httpx.TransportError)


class ElevenLabs:
    """Synchronous client for the ElevenLabs Dubbing API (one httpx connection pool).

    `max_attempts` bounds every request (first try included). Between attempts it sleeps for
    the server's Retry-After if given, else `backoff_base * 2**n` plus up to `backoff_base` of
    jitter; either way at most `max_backoff` seconds. `timeout` applies per network operation.
    `clock`/`sleep` are the time it waits by (a test passes its own, so no test really waits).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        poll_interval: float = 5.0,
        poll_timeout: float = 3600.0,
        max_attempts: int = 6,
        timeout: float = 60.0,
        backoff_base: float = 1.0,
        max_backoff: float = 60.0,
        slot_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise DubbingError("an ElevenLabs API key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.backoff_base = backoff_base
        # How long a create waits for a free concurrency slot (default: the poll timeout).
        self.slot_timeout = poll_timeout if slot_timeout is None else slot_timeout
        self._clock = clock  # time.monotonic and time.sleep unless a test drives the time
        self._sleep = sleep
        self._expected: dict[str, float] = {}  # dubbing_id -> expected_duration_sec
        import httpx

        # No redirects: httpx would forward the custom xi-api-key header to another host.
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"xi-api-key": api_key},
            timeout=timeout,
            follow_redirects=False,
            verify=tls.context(),
        )

    @classmethod
    def from_env(cls, **kw: Any) -> ElevenLabs:
        """Build a client from ELEVENLABS_API_KEY (required), ELEVENLABS_BASE_URL and the optional
        ELEVENLABS_POLL_INTERVAL / ELEVENLABS_POLL_TIMEOUT (seconds); keyword arguments win."""
        api_key = os.environ.get("ELEVENLABS_API_KEY", "").strip()
        if not api_key:
            raise DubbingError("ELEVENLABS_API_KEY is not set; it is needed to create dubs")
        kw.setdefault("base_url", os.environ.get("ELEVENLABS_BASE_URL") or DEFAULT_BASE_URL)
        for var, name in (("ELEVENLABS_POLL_INTERVAL", "poll_interval"),
                          ("ELEVENLABS_POLL_TIMEOUT", "poll_timeout")):
            raw = os.environ.get(var, "").strip()
            if raw and name not in kw:
                try:
                    kw[name] = float(raw)
                except ValueError:
                    raise DubbingError(f"{var} must be a number of seconds, got {raw!r}") from None
        return cls(api_key, **kw)

    # -- public API ------------------------------------------------------------------------

    def create(
        self,
        audio: Path,
        *,
        target_lang: str,
        source_lang: str = "auto",
        name: str,
        num_speakers: int = 0,
        watermark: bool = False,
        on_wait: Callable[[float], None] | None = None,
    ) -> str:
        """Start dubbing `audio` into `target_lang` (an ElevenLabs code); returns the dubbing_id.

        The file is streamed from disk (re-opened on every attempt). A create is billable, so it
        is sent again only when ElevenLabs certainly did not take it: a refused connection, or a
        429. A 429 for the concurrency limit is waited out for up to `slot_timeout` seconds
        (`on_wait` hears the seconds waited so far, to say so); other 429s get the usual
        `max_attempts`. Anything that may have reached ElevenLabs unanswered raises CreateUnknown.
        """
        import httpx

        audio = Path(audio)
        if not audio.is_file():
            raise DubbingError(f"audio file not found: {audio}", language=target_lang)
        content_type = _UPLOAD_TYPES.get(audio.suffix.lower(), "application/octet-stream")
        fields = {
            "name": name,
            "source_lang": source_lang,
            "target_lang": target_lang,
            "num_speakers": str(num_speakers),
            "watermark": "true" if watermark else "false",
        }
        started = self._clock()
        attempts = 0
        while True:
            try:
                with audio.open("rb") as fh:
                    resp = self._http.post(
                        "/v1/dubbing", data=fields, files={"file": (audio.name, fh, content_type)}
                    )
                body = self._json(resp, language=target_lang)
                break
            except _Retryable as exc:
                if exc.status_code != 429:  # 5xx (and 425): it may have been accepted
                    raise CreateUnknown(f"create answered HTTP {exc.status_code} ({exc.reason})",
                                        language=target_lang, status_code=exc.status_code
                                        ) from None
                waited = self._clock() - started
                if exc.no_free_slot:
                    if waited >= self.slot_timeout:
                        raise DubbingError(
                            f"no free ElevenLabs dubbing slot after {waited:.0f}s ({exc.code}); "
                            "nothing was paid", language=target_lang, status_code=429) from None
                    if on_wait is not None:
                        on_wait(waited)
                    pause = exc.retry_after if exc.retry_after is not None else self.poll_interval
                    self._sleep(min(pause, self.max_backoff, self.slot_timeout - waited))
                    continue
                attempts += 1
                if attempts >= self.max_attempts:
                    raise DubbingError(exc.reason, language=target_lang,
                                       status_code=429) from None
                self._sleep(self._backoff(attempts, exc.retry_after))
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                attempts += 1  # never reached ElevenLabs: safe to send again
                if attempts >= self.max_attempts:
                    raise DubbingError(self._redact(f"create dub failed: {type(exc).__name__}: "
                                                    f"{exc}"), language=target_lang) from exc
                self._sleep(self._backoff(attempts, None))
            except httpx.TransportError as exc:
                raise CreateUnknown(self._redact(f"create answer lost: {type(exc).__name__}: "
                                                 f"{exc}"), language=target_lang) from exc
        dubbing_id = body.get("dubbing_id")
        if not isinstance(dubbing_id, str) or not dubbing_id:
            raise CreateUnknown("create answer carried no dubbing_id", language=target_lang)
        expected = body.get("expected_duration_sec")
        if isinstance(expected, int | float) and expected > 0:
            self._expected[dubbing_id] = float(expected)
        log.info("ElevenLabs dub %s started for %s (expected %.0fs)", dubbing_id, target_lang,
                 self._expected.get(dubbing_id, 0.0))
        return dubbing_id

    def expected_seconds(self, dubbing_id: str) -> float | None:
        """The create answer's `expected_duration_sec` for a dub this client created."""
        return self._expected.get(dubbing_id)

    def find(self, name: str) -> str | None:
        """The id of the newest dub called `name`, or None: every page of GET /v1/dubbing,
        newest first, is read (a busy account's dub need not be on the first page).

        Lets a run whose create went unanswered, or that crashed between paying for a dub and
        recording its id, find it again."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"page_size": str(LIST_PAGE_SIZE), "order_by": "created_at",
                      "order_direction": "DESCENDING"} | ({"cursor": cursor} if cursor else {})
            page = self._call(
                "list dubs", lambda p=params: self._json(self._http.get("/v1/dubbing", params=p)),
            )
            for dub in page.get("dubs") or []:
                if dub.get("name") == name and dub.get("dubbing_id"):
                    return str(dub["dubbing_id"])
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
            if cursor in seen:
                raise DubbingError(f"listing dubs looped (cursor {cursor!r} came back)")
            seen.add(cursor)

    def status(self, dubbing_id: str) -> dict:
        """The dub's metadata: dubbing_id, name, status, target_languages, error, ..."""
        path = f"/v1/dubbing/{quote(dubbing_id, safe='')}"
        return self._call(
            "get dub status",
            lambda: self._json(self._http.get(path), dubbing_id=dubbing_id),
            dubbing_id=dubbing_id,
        )

    def wait(self, dubbing_id: str, *, language: str | None = None,
             on_status: Callable[[str], None] | None = None) -> None:
        """Poll until the dub is `dubbed`; DubbingError on any status but the working ones
        (queued, preparing, dubbing) or after poll_timeout.

        `failed` and `cancelled` are final (ElevenLabs will not finish the dub); an unknown
        status is not waited on either, but the error is not final: the next apply asks again.
        `on_status` hears each status polled (progress for a wait that can last an hour).
        """
        deadline = self._clock() + self.poll_timeout
        while True:
            try:
                meta = self.status(dubbing_id)
            except DubbingError as exc:
                exc.language = exc.language or language
                raise
            state = str(meta.get("status") or "").lower()
            if on_status is not None:
                on_status(state or "unknown")
            if state == DUBBED:
                return
            if state not in WORKING:
                raise DubbingError(self._redact(why_ended(state, meta.get("error"))),
                                   language=language, dubbing_id=dubbing_id, state=state or None)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DubbingError(
                    f"dub still {state!r} after {self.poll_timeout:g}s of polling",
                    language=language,
                    dubbing_id=dubbing_id,
                    state=state,
                )
            log.debug("ElevenLabs dub %s is %s", dubbing_id, state)
            self._sleep(min(self.poll_interval, remaining))

    def download(self, dubbing_id: str, language_code: str, dest: Path) -> Path:
        """Stream the dubbed track to `dest` with the right extension; returns the path written.

        The extension comes from the answer's Content-Type (.mp3 for audio/mpeg, .mp4 for
        video/mp4): an existing .mp3/.mp4/.m4a suffix on `dest` is replaced, anything else is kept
        and the extension appended. The body goes to a temporary file in the same directory and is
        renamed into place, so a failed download never leaves a truncated track behind.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        path = f"/v1/dubbing/{quote(dubbing_id, safe='')}/audio/{quote(language_code, safe='')}"

        def attempt() -> Path:
            with self._http.stream("GET", path) as resp:
                if not resp.is_success:
                    resp.read()
                    self._raise_for(resp, language=language_code, dubbing_id=dubbing_id)
                part = stream_to_part_file(resp, dest)
                content_type = resp.headers.get("content-type", "")
            try:
                final = with_media_suffix(dest, media_suffix(content_type, part))
                os.replace(part, final)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            return final

        written = self._call(
            "download dub", attempt, language=language_code, dubbing_id=dubbing_id
        )
        log.info("ElevenLabs dub %s/%s saved to %s", dubbing_id, language_code, written)
        return written

    def transcript(self, dubbing_id: str, language_code: str) -> bytes:
        """The dub's transcript in one language as WebVTT (`source`: the original speech).
        Free: it comes with the paid dub. The answer is the file itself, or JSON carrying it
        (`{"webvtt": ...}`, as the newer transcript endpoint answers)."""
        path = (f"/v1/dubbing/{quote(dubbing_id, safe='')}/transcript/"
                f"{quote(language_code, safe='')}")

        def attempt() -> bytes:
            resp = self._http.get(path, params={"format_type": "webvtt"})
            if not resp.is_success:
                self._raise_for(resp, language=language_code, dubbing_id=dubbing_id)
            if resp.headers.get("content-type", "").startswith("application/json"):
                body = resp.json()
                text = body.get("webvtt") or body.get("content") if isinstance(body, dict) \
                    else body
                if not isinstance(text, str):
                    raise DubbingError("transcript answer has no WebVTT text",
                                       language=language_code, dubbing_id=dubbing_id)
                return text.encode("utf-8")
            return resp.content

        return self._call("get transcript", attempt, language=language_code,
                          dubbing_id=dubbing_id)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> ElevenLabs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ElevenLabs(base_url={self.base_url!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        what: str,
        attempt: Callable[[], T],
        *,
        language: str | None = None,
        dubbing_id: str | None = None,
    ) -> T:
        """Run `attempt` under the retry policy; whatever still fails becomes a DubbingError."""
        import httpx

        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            before_sleep=lambda state: self._log_retry(what, state),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise DubbingError(
                exc.reason, language=language, dubbing_id=dubbing_id, status_code=exc.status_code
            ) from None
        except httpx.HTTPError as exc:
            reason = self._redact(f"{what} failed: {type(exc).__name__}: {exc}")
            raise DubbingError(reason, language=language, dubbing_id=dubbing_id) from exc

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self._backoff(state.attempt_number,
                             exc.retry_after if isinstance(exc, _Retryable) else None)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Honour the server's Retry-After when it gave one, else jittered exponential backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        exponential = self.backoff_base * 2 ** (attempt - 1)
        return min(exponential + random.uniform(0, self.backoff_base), self.max_backoff)

    def _log_retry(self, what: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        log.warning("ElevenLabs %s: %s; attempt %d/%d, retrying in %.2fs", what,
                    self._redact(str(exc)), state.attempt_number, self.max_attempts, sleep)

    def _json(
        self, resp: httpx.Response, *, language: str | None = None, dubbing_id: str | None = None
    ) -> dict[str, Any]:
        """The JSON object of a successful answer (raising for anything else)."""
        self._raise_for(resp, language=language, dubbing_id=dubbing_id)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DubbingError(
                f"expected a JSON object from {resp.request.url.path}, got "
                f"{resp.headers.get('content-type', 'no content type')}",
                language=language,
                dubbing_id=dubbing_id,
                status_code=resp.status_code,
            )
        return body

    def _raise_for(
        self, resp: httpx.Response, *, language: str | None, dubbing_id: str | None
    ) -> None:
        """Classify a non-2xx answer (body already read): retryable, or a DubbingError now."""
        if resp.is_success:
            return
        reason = self._redact(api_message(resp))
        if resp.status_code in (425, 429) or resp.status_code >= 500:
            raise _Retryable(resp.status_code, reason, retry_after_seconds(resp), api_status(resp))
        raise DubbingError(
            reason, language=language, dubbing_id=dubbing_id, status_code=resp.status_code
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)
