"""A fake ElevenLabs Dubbing API on 127.0.0.1, so tests never touch the real (billable) one.

It is a real HTTP server (stdlib ThreadingHTTPServer in a daemon thread) speaking the published
v1 dubbing contract, so the client under test exercises its real transport, multipart encoding,
streaming and retry code. The contract is tests/elevenlabs_contract.json (the subset of the
official `elevenlabs` SDK 2.78.0 / OpenAPI document we use): every request is checked against its
endpoints, fields, query parameters, enums and language codes, and one the real service would
refuse is answered 422 *and* recorded in `violations` (the fixtures fail the test on any):

    POST   /v1/dubbing                        multipart (file, target_lang, ...) ->
                                              {"dubbing_id", "expected_duration_sec"}
    GET    /v1/dubbing                        ?cursor&page_size(<=200)&order_by&order_direction
                                              -> {"dubs", "has_more", "next_cursor"}
    GET    /v1/dubbing/{id}                   metadata; every GET advances the dub one step:
                                              queued -> preparing -> dubbing -> dubbed (or failed)
                                              after `steps_to_dub` (per language: steps_by_lang)
    GET    /v1/dubbing/{id}/audio/{lang}      real audio made by ffmpeg (a sine tone as long as
                                              the upload); 425 until the dub is `dubbed`
    GET    /v1/dubbing/{id}/transcript/{lang}  ?format_type=webvtt|srt: the transcript as that
                                              file (text/plain), one cue every 3 s of the upload;
                                              lang is the target or `source`; 425 until `dubbed`
    DELETE /v1/dubbing/{id}                   {"status": "ok"}

Errors use both envelopes the real API uses: `{"detail": {"status", "message"}}` (401, 429,
status lookups), FastAPI's `{"detail": [...]}` for 422 validation, and the flat
`{"error", "message"}` (400 unsupported language, and the audio endpoint's 404/425, as in the
published OpenAPI examples).

Faults, per language (ElevenLabs' code): `after_accept` (the create is accepted, then answered
502, dropped, or stalled past the client's read timeout), `broken_audio` (the next downloads are
empty, an HTML page, random bytes, silence or ten times too long), `final_status` (the dub ends
`cancelled`, or any status), `no_slot_for` (creates are refused 429 concurrent_limit_exceeded
for that many seconds of `clock`, a clock the test controls). `other_dubs` and `busy_account`
fill the account with other people's newer dubs, so a name must be found past the first page.

Typical use:

    with FakeElevenLabs(steps_to_dub=3) as fake:
        client = ElevenLabs(fake.api_key, fake.base_url, poll_interval=0.01)
        fake.fail_next = [429]            # knobs may be changed between requests
        fake.steps_by_lang["ja"] = 1000   # per language: slow (ja stays `dubbing`) ...
        fake.flaky_languages["en"] = [503, 429]  # ... flaky (en's next two requests fail) ...
        fake.fail_languages["de"] = "voice clone failed"  # ... or failing
        fake.after_accept["pt"] = ["502"]  # ... or its create's answer is lost
        ...
        assert fake.creates[0]["target_lang"] == "de"
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from local_server import LocalServer

CONTRACT = json.loads((Path(__file__).parent / "elevenlabs_contract.json").read_text())
LANGUAGES = frozenset(CONTRACT["languages"])
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"

PROGRESS = tuple(CONTRACT["statuses"]["working"])  # non-terminal statuses, in order
BROKEN_AUDIO = ("empty", "html", "random", "silence", "long")
DROP = -1  # a _Reply status: close the connection without answering
AUDIO_TYPES = {"mp3": "audio/mpeg", "mp4": "video/mp4"}

_DUB = re.compile(r"^/v1/dubbing/(?P<id>[^/]+)$")
_AUDIO = re.compile(r"^/v1/dubbing/(?P<id>[^/]+)/audio/(?P<lang>[^/]+)$")
_TRANSCRIPT = re.compile(r"^/v1/dubbing/(?P<id>[^/]+)/transcript/(?P<lang>[^/]+)$")


def transcript_cues(lang: str, duration: float) -> list[tuple[float, float, str]]:
    """The fake transcript: (start, end, text) every 3 s, 0.5 s in, each 2 s long."""
    starts = [0.5 + 3 * i for i in range(int(duration // 3) + 1)]
    return [(t, min(t + 2, duration), f"{lang} line {i}")
            for i, t in enumerate(starts, 1) if t + 0.2 < duration]


def transcript(lang: str, duration: float, fmt: str) -> str:
    def stamp(t: float, sep: str) -> str:
        ms = round(t * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}" \
               f"{ms % 1000:03d}"

    cues = transcript_cues(lang, duration)
    if fmt == "srt":
        return "".join(f"{i}\n{stamp(a, ',')} --> {stamp(b, ',')}\n{text}\n\n"
                       for i, (a, b, text) in enumerate(cues, 1))
    return "WEBVTT\n" + "".join(f"\n{stamp(a, '.')} --> {stamp(b, '.')}\n{text}\n"
                                 for a, b, text in cues)


def default_tone_hz(lang: str) -> int:
    """A stable, per-language tone (220..1000 Hz) so each dubbed track is recognisably different."""
    return 220 + (zlib.crc32(lang.encode()) % 40) * 20


# What every fake in this process shares: the same upload (the lecture's audio, extracted the
# same way each time) is probed once, and a tone of given length, format and pitch is made once
# (its bytes depend on nothing else). A fresh fake per test answers exactly as before.
_SHARED = tempfile.TemporaryDirectory(prefix="fake-elevenlabs-")
_shared_lock = threading.Lock()
_durations: dict[tuple[str, str], float] = {}  # (sha256 of the upload, its suffix) -> seconds
_tones: dict[tuple[float, str, int], Path] = {}  # (seconds, format, Hz; 0 = silence) -> file


def probe_duration(path: Path) -> float:
    """Media duration in seconds according to ffprobe (raises ValueError if it is not media)."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration",
         "-of", "default=noprint_wrappers=1:nokey=1", str(path)],
        capture_output=True, text=True, check=False,
    )
    try:
        return float(out.stdout.strip())
    except ValueError:
        raise ValueError(f"ffprobe cannot read {path.name}: {out.stderr.strip()}") from None


class Clock:
    """Time a test controls: `sleep` moves it on at once (give it to the client and the fake)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # streamed instead of `body` when set


def _json(status: int, payload: object, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), headers=headers)


def _detail(status: int, code: str, message: str, **headers: str) -> _Reply:
    return _json(status, {"detail": {"status": code, "message": message}}, **headers)


def _flat(status: int, code: str, message: str) -> _Reply:
    return _json(status, {"error": code, "message": message})


@dataclass
class _Dub:
    dubbing_id: str
    name: str
    target_lang: str
    source_lang: str
    duration: float
    content_type: str
    created_at: str
    status: str = "queued"
    error: str | None = None
    polls: int = 0


class FakeElevenLabs(LocalServer):
    """The fake server. Knobs and observations are plain attributes; see the module docstring."""

    def __init__(
        self,
        *,
        steps_to_dub: int = 2,
        audio_format: str = "mp3",
        tone_hz_by_lang: dict[str, int] | None = None,
        tone_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if audio_format not in AUDIO_TYPES:
            raise ValueError(f"audio_format must be one of {sorted(AUDIO_TYPES)}")
        super().__init__(_Handler, "fake-elevenlabs")
        self.api_key = "sk_fake_" + secrets.token_hex(16)
        # knobs
        self.steps_to_dub = steps_to_dub  # GETs of the metadata until the dub is terminal
        self.audio_format = audio_format  # "mp3" -> audio/mpeg, "mp4" -> video/mp4 (AAC)
        self.tone_hz_by_lang = dict(tone_hz_by_lang or {})
        self.tone_seconds = tone_seconds  # None: as long as the uploaded file
        self.steps_by_lang: dict[str, int] = {}  # lang -> its own steps_to_dub (a slow dub)
        self.flaky_languages: dict[str, list[int]] = {}  # lang -> statuses for the next requests
        #   about that language's dubs (create, status, audio; 0 = answer normally)
        self.fail_languages: dict[str, str] = {}  # lang -> `error` of a dub that ends "failed"
        self.reject_languages: dict[str, str] = {}  # lang -> 400 message at create (flat)
        self.concurrent_limit: int | None = None  # max dubs in progress at once, else 429
        self.fail_next: list[int] = []  # status codes to answer the next requests with
        self.stall_next: list[float] = []  # seconds to sit on the next requests (timeouts)
        self.retry_after = 1  # Retry-After (seconds) sent with every 429
        self.clock = clock  # what `no_slot_for` windows are measured by
        self.after_accept: dict[str, list[str]] = {}  # lang -> "502" | "drop" | "stall", per create
        self.stall_seconds = 3.0  # how long a "stall" sits on an accepted create's answer
        self.broken_audio: dict[str, list[str]] = {}  # lang -> BROKEN_AUDIO kinds, per download
        self.final_status: dict[str, str] = {}  # lang -> the status its dub ends in
        self.busy_account = 0  # other people's dubs created right after each accepted create
        self.no_slot_for: dict[str, float] = {}  # lang -> seconds of 429 concurrent_limit_exceeded
        self._no_slot_since: dict[str, float] = {}
        # observations
        self.creates: list[dict] = []  # accepted (billable) creates: form fields + file facts
        self.violations: list[str] = []  # requests the real service would refuse
        self.lists: list[dict[str, str]] = []  # the query of every GET /v1/dubbing
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.responses: list[tuple[str, str, int]] = []  # (method, path, status) answered
        self._dubs: dict[str, _Dub] = {}
        self._lock = threading.Lock()  # guards knobs popped by handlers, observations, _dubs

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What the client's `base_url` (ELEVENLABS_BASE_URL) is set to."""
        return self.url

    def reset(self) -> None:
        """Forget dubs, observations and one-shot knobs (the tone cache is kept: it is pure)."""
        with self._lock:
            self.steps_by_lang.clear()
            self.flaky_languages.clear()
            self.fail_languages.clear()
            self.reject_languages.clear()
            self.concurrent_limit = None
            self.after_accept.clear()
            self.broken_audio.clear()
            self.final_status.clear()
            self.busy_account = 0
            self.no_slot_for.clear()
            self._no_slot_since.clear()
            self.violations.clear()
            self.lists.clear()
            self.fail_next.clear()
            self.stall_next.clear()
            self.creates.clear()
            self.requests.clear()
            self.responses.clear()
            self._dubs.clear()

    def other_dubs(self, count: int) -> None:
        """Add `count` finished dubs by other people, newer than any so far, so the account's
        list runs to several pages before a dub made earlier."""
        with self._lock:
            self._add_others(count)

    def _add_others(self, count: int) -> None:
        """(with the lock held)"""
        start = len(self._dubs)
        for i in range(start, start + count):
            self._dubs[f"other{i:05d}"] = _Dub(
                f"other{i:05d}", f"someone else's dub {i}", "en", "auto", 60.0, "audio/mpeg",
                datetime.now(UTC).isoformat(), status="dubbed")

    def count(self, method: str, path: str) -> int:
        """How many requests hit exactly (method, path)."""
        with self._lock:
            return self.requests.count((method, path))

    # -- request handling ------------------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        method = handler.command
        path = unquote(urlsplit(handler.path).path)
        body = _read_body(handler)
        with self._lock:
            self.requests.append((method, path))
            stall = self.stall_next.pop(0) if self.stall_next else 0.0
        if stall:
            time.sleep(stall)
        problem = self._against_contract(method, path, handler, body)
        if problem is not None:
            with self._lock:
                self.violations.append(f"{method} {path}: {problem}")
            reply = _json(422, {"detail": [{"type": "value_error", "loc": ["request"],
                                            "msg": problem, "input": None}]})
        else:
            reply = self._route(method, path, handler, body)
        with self._lock:
            self.responses.append((method, path, reply.status))
        if reply.status == DROP:
            handler.close_connection = True  # no answer at all: the client sees a dropped line
            return
        _send(handler, reply)

    def _against_contract(self, method: str, path: str, handler: _Handler,
                          body: bytes) -> str | None:
        """Why the real service would refuse this request (None: it follows the contract)."""
        query = parse_qs(urlsplit(handler.path).query, keep_blank_values=True)
        endpoints = CONTRACT["endpoints"]
        if method == "POST" and path == "/v1/dubbing":
            return _check_create(handler.headers.get("content-type", ""), body, query)
        if method == "GET" and path == "/v1/dubbing":
            return _check_query(query, endpoints["list"])
        if m := _AUDIO.match(path):
            return (_check_language(m["lang"]) if method == "GET"
                    else f"{method} is not an operation of {path}") or _check_query(
                        query, endpoints["audio"])
        if m := _TRANSCRIPT.match(path):
            lang = None if m["lang"] == "source" else _check_language(m["lang"])
            return lang or _check_query(query, endpoints["transcript"])
        if _DUB.match(path) and method in ("GET", "DELETE"):
            return _check_query(query, endpoints["get"])
        return f"{method} {path} is not an endpoint of the dubbing API"

    def _route(self, method: str, path: str, handler: _Handler, body: bytes) -> _Reply:
        if handler.headers.get("xi-api-key") != self.api_key:
            return _detail(401, "invalid_api_key", "Invalid API key")
        with self._lock:
            injected = self.fail_next.pop(0) if self.fail_next else None
        if injected is not None:
            return self._injected(injected)
        if method == "POST" and path == "/v1/dubbing":
            return self._create(handler.headers.get("content-type", ""), body)
        if method == "GET" and path == "/v1/dubbing":
            query = parse_qs(urlsplit(handler.path).query)
            with self._lock:
                self.lists.append({k: v[0] for k, v in query.items()})
            return self._list(query)
        if m := _AUDIO.match(path):
            if method == "GET":
                return self._audio(m["id"], m["lang"])
        elif m := _TRANSCRIPT.match(path):
            if method == "GET":
                query = parse_qs(urlsplit(handler.path).query)
                return self._transcript(m["id"], m["lang"], query.get("format_type", [""])[0])
        elif m := _DUB.match(path):
            if method == "GET":
                return self._metadata(m["id"])
            if method == "DELETE":
                with self._lock:
                    gone = self._dubs.pop(m["id"], None)
                return _json(200, {"status": "ok"}) if gone else self._no_dub(m["id"])
        return _json(404, {"detail": "Not Found"})

    def _injected(self, status: int) -> _Reply:
        if status == 429:
            return _detail(429, "rate_limit_exceeded", "You have exceeded the rate limit.",
                           **{"Retry-After": str(self.retry_after)})
        if status == 503:
            return _flat(503, "service_unavailable", "The service is temporarily unavailable.")
        if status >= 500:
            return _detail(status, "internal_server_error", "An internal error occurred.")
        return _detail(status, "injected_error", f"Injected HTTP {status}.")

    def _create(self, content_type: str, body: bytes) -> _Reply:
        try:
            parts = _parse_multipart(content_type, body)
        except ValueError as exc:
            return _json(422, {"detail": [{"type": "value_error", "loc": ["body"],
                                           "msg": str(exc), "input": None}]})
        missing = [name for name in ("file", "target_lang") if not parts.get(name)]
        if missing:
            return _json(422, {"detail": [{"type": "missing", "loc": ["body", name],
                                           "msg": "Field required", "input": None}
                                          for name in missing]})
        upload = parts["file"]
        fields = {name: p.text() for name, p in parts.items() if p.filename is None}
        lang = fields["target_lang"]
        if flaky := self._flaky(lang):
            return flaky
        if lang in self.reject_languages:
            return _flat(400, "unsupported_language", self.reject_languages[lang])
        if refused := self._no_slot(lang):
            return refused
        try:
            duration = self._probe_upload(upload)
        except ValueError:
            return _detail(400, "invalid_file", "The uploaded file could not be decoded as media.")
        with self._lock:
            in_progress = sum(d.status not in ("dubbed", "failed") for d in self._dubs.values())
            if self.concurrent_limit is not None and in_progress >= self.concurrent_limit:
                return _detail(
                    429, "concurrent_limit_exceeded",
                    f"Too many concurrent dubs: {in_progress} in progress, limit "
                    f"{self.concurrent_limit}.", **{"Retry-After": str(self.retry_after)},
                )
            dub = _Dub(
                dubbing_id=secrets.token_hex(10),
                name=fields.get("name") or upload.filename or "Untitled",
                target_lang=lang,
                source_lang=fields.get("source_lang") or "auto",
                duration=duration,
                content_type=upload.content_type,
                created_at=datetime.now(UTC).isoformat(),
            )
            self._dubs[dub.dubbing_id] = dub
            self.creates.append({
                **fields,
                "dubbing_id": dub.dubbing_id,
                "file_name": upload.filename,
                "file_content_type": upload.content_type,
                "file_size": len(upload.data),
                "file_sha256": hashlib.sha256(upload.data).hexdigest(),
                "duration": duration,
            })
            self._add_others(self.busy_account)
            lost = self.after_accept.get(lang)
            fault = lost.pop(0) if lost else None
        answer = _json(200, {"dubbing_id": dub.dubbing_id,
                             "expected_duration_sec": round(max(1.0, duration * 0.5), 1)})
        if fault == "502":
            return _detail(502, "bad_gateway", "Bad gateway.")
        if fault == "drop":
            return _Reply(DROP)
        if fault == "stall":
            time.sleep(self.stall_seconds)  # the client's read timeout fires first
        return answer

    def _no_slot(self, lang: str) -> _Reply | None:
        """429 concurrent_limit_exceeded while `lang`'s window (on `clock`) is open."""
        with self._lock:
            window = self.no_slot_for.get(lang)
            if window is None:
                return None
            since = self._no_slot_since.setdefault(lang, self.clock())
            if self.clock() - since >= window:
                return None
        return _detail(429, "concurrent_limit_exceeded",
                       "You have too many dubs in progress; wait for one to finish.",
                       **{"Retry-After": str(self.retry_after)})

    def _list(self, query: dict[str, list[str]]) -> _Reply:
        """GET /v1/dubbing: the account's dubs, ordered as asked (default newest first),
        cursor-paginated (the cursor is opaque to the client)."""
        size = int((query.get("page_size") or [str(CONTRACT["endpoints"]["list"]
                                                   ["page_size_default"])])[0])
        cursor = (query.get("cursor") or [""])[0]
        start = int(cursor[len("page-"):]) if cursor.startswith("page-") else 0
        by = (query.get("order_by") or ["created_at"])[0]
        with self._lock:
            dubs = list(self._dubs.values())  # in creation order
        if by == "name":
            dubs.sort(key=lambda d: d.name)
        if (query.get("order_direction") or ["DESCENDING"])[0] == "DESCENDING":
            dubs.reverse()
        page = dubs[start : start + size]
        more = start + size < len(dubs)
        return _json(200, {
            "dubs": [{"dubbing_id": d.dubbing_id, "name": d.name, "status": d.status,
                      "target_languages": [d.target_lang], "created_at": d.created_at,
                      "source_language": d.source_lang, "editable": False,
                      "media_metadata": {"content_type": d.content_type, "duration": d.duration},
                      "error": d.error}
                     for d in page],
            "next_cursor": f"page-{start + size}" if more else None,
            "has_more": more,
        })

    def _flaky(self, lang: str) -> _Reply | None:
        """The injected answer for the next request about `lang`, if one is pending."""
        with self._lock:
            queue = self.flaky_languages.get(lang)
            status = queue.pop(0) if queue else None
        return self._injected(status) if status else None

    def _metadata(self, dubbing_id: str) -> _Reply:
        with self._lock:
            dub = self._dubs.get(dubbing_id)
        if dub is None:
            return self._no_dub(dubbing_id)
        if flaky := self._flaky(dub.target_lang):
            return flaky
        with self._lock:
            self._advance(dub)
            return _json(200, {
                "dubbing_id": dub.dubbing_id,
                "name": dub.name,
                "status": dub.status,
                "target_languages": [dub.target_lang],
                "source_language": dub.source_lang,
                "editable": False,
                "created_at": dub.created_at,
                "media_metadata": {"content_type": dub.content_type, "duration": dub.duration},
                "error": dub.error,
            })

    def _advance(self, dub: _Dub) -> None:
        """One poll's worth of progress (called with the lock held)."""
        dub.polls += 1
        if dub.status in ("dubbed", "failed"):
            return
        if dub.polls < self.steps_by_lang.get(dub.target_lang, self.steps_to_dub):
            dub.status = PROGRESS[min(dub.polls - 1, len(PROGRESS) - 1)]
        elif dub.target_lang in self.fail_languages:
            dub.status, dub.error = "failed", self.fail_languages[dub.target_lang]
        elif dub.target_lang in self.final_status:
            dub.status = self.final_status[dub.target_lang]
        else:
            dub.status = "dubbed"

    def _audio(self, dubbing_id: str, lang: str) -> _Reply:
        with self._lock:
            dub = self._dubs.get(dubbing_id)
        if dub is None:
            return _flat(404, "dubbing_not_found", f"Dubbing {dubbing_id} not found.")
        if flaky := self._flaky(dub.target_lang):
            return flaky
        if lang != dub.target_lang:
            return _flat(404, "language_not_found",
                         f"Language {lang} not found in dubbing {dubbing_id}.")
        if dub.status != "dubbed":
            return _flat(425, "dubbing_not_dubbed", "Dubbing has not finished yet.")
        fmt = self.audio_format
        with self._lock:
            queue = self.broken_audio.get(lang)
            broken = queue.pop(0) if queue else None
        if broken is not None:
            return self._broken(broken, dub.duration, fmt)
        return _Reply(200, content_type=AUDIO_TYPES[fmt], file=self._tone(lang, dub.duration, fmt))

    def _broken(self, kind: str, duration: float, fmt: str) -> _Reply:
        """A 200 whose body is not the dub: what a broken download looks like."""
        if kind == "empty":
            return _Reply(200, b"", AUDIO_TYPES[fmt])
        if kind == "html":
            return _Reply(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                          AUDIO_TYPES[fmt])
        if kind == "random":
            return _Reply(200, secrets.token_bytes(64 * 1024), AUDIO_TYPES[fmt])
        if kind == "silence":
            return _Reply(200, content_type=AUDIO_TYPES[fmt],
                          file=self._tone("silence", duration, fmt, hz=0))
        if kind == "long":
            return _Reply(200, content_type=AUDIO_TYPES[fmt],
                          file=self._tone("long", duration * 10, fmt))
        raise ValueError(f"broken_audio kind must be one of {BROKEN_AUDIO}, got {kind!r}")

    def _transcript(self, dubbing_id: str, lang: str, fmt: str) -> _Reply:
        with self._lock:
            dub = self._dubs.get(dubbing_id)
        if dub is None:
            return self._no_dub(dubbing_id)
        if lang not in (dub.target_lang, "source"):
            return _flat(404, "language_not_found",
                         f"Language {lang} not found in dubbing {dubbing_id}.")
        if fmt not in ("webvtt", "srt"):
            return _detail(422, "invalid_format_type", f"format_type {fmt!r} is not supported.")
        if dub.status != "dubbed":
            return _flat(425, "dubbing_not_dubbed", "Dubbing has not finished yet.")
        return _Reply(200, transcript(lang, dub.duration, fmt).encode(), "text/plain")

    def _no_dub(self, dubbing_id: str) -> _Reply:
        return _detail(404, "dubbing_not_found", f"Dubbing {dubbing_id} not found.")

    # -- media -----------------------------------------------------------------------------

    def _probe_upload(self, upload: _Part) -> float:
        suffix = Path(upload.filename or "").suffix
        key = (hashlib.sha256(upload.data).hexdigest(), suffix)
        if key in _durations:
            return _durations[key]
        fd, name = tempfile.mkstemp(dir=_SHARED.name, suffix=suffix)
        path = Path(name)
        try:
            with open(fd, "wb") as out:
                out.write(upload.data)
            seconds = probe_duration(path)
        finally:
            path.unlink(missing_ok=True)
        with _shared_lock:
            _durations[key] = seconds
        return seconds

    def _tone(self, lang: str, duration: float, fmt: str, hz: int | None = None) -> Path:
        """The dubbed track for (lang, duration), generated once per process (hz=0: silence)."""
        if hz is None:
            hz = self.tone_hz_by_lang.get(lang, default_tone_hz(lang))
        seconds = round(self.tone_seconds if self.tone_seconds is not None else duration, 3)
        key = (seconds, fmt, hz)
        with _shared_lock:
            if key not in _tones:
                out = Path(_SHARED.name) / f"tone-{hz}hz-{seconds}s.{fmt}"
                source = (f"sine=frequency={hz}:sample_rate=44100:duration={seconds}" if hz else
                          f"anullsrc=r=44100:cl=stereo:d={seconds}")
                codec = ["-c:a", "libmp3lame", "-b:a", "64k"] if fmt == "mp3" else [
                    "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart"]
                subprocess.run(
                    [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                     "-f", "lavfi", "-i", source, "-ac", "2", *codec, str(out)],
                    check=True, capture_output=True,
                )
                _tones[key] = out
            return _tones[key]


# -- HTTP plumbing -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every reply has a length

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACKs add
        # ~40 ms to every request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET  # noqa: N815
    do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep test output clean; `requests`/`responses` are the log


@dataclass
class _Part:
    filename: str | None
    content_type: str
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8")


def _parse_multipart(content_type: str, body: bytes) -> dict[str, _Part]:
    """A form body -> {field name: part}; multipart is parsed with the stdlib email parser."""
    if content_type.lower().startswith("application/x-www-form-urlencoded"):  # no file, then
        return {name: _Part(None, "text/plain", value.encode())
                for name, value in parse_qsl(body.decode("latin-1"))}
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValueError(f"expected multipart/form-data, got {content_type or 'nothing'}")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("malformed multipart body")
    parts: dict[str, _Part] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        parts[name] = _Part(part.get_filename(), part.get_content_type(),
                            payload if isinstance(payload, bytes) else b"")
    return parts


def _check_language(code: str) -> str | None:
    if code not in LANGUAGES:
        return f"{code!r} is not an ElevenLabs dubbing language ({', '.join(sorted(LANGUAGES))})"
    return None


def _check_value(name: str, value: str, kind: object) -> str | None:
    """One form field or query value against its contract type."""
    if isinstance(kind, list):
        return None if value in kind else f"{name}={value!r} is not one of {kind}"
    if kind == "language":
        return _check_language(value)
    if kind == "language_or_auto":
        return None if value == "auto" else _check_language(value)
    if kind == "boolean" and value not in ("true", "false"):
        return f"{name}={value!r} is not a boolean"
    if kind in ("integer", "page_size") and not re.fullmatch(r"-?\d+", value):
        return f"{name}={value!r} is not an integer"
    most = CONTRACT["endpoints"]["list"]["page_size_max"]
    if kind == "page_size" and not 1 <= int(value) <= most:
        return f"page_size={value} is out of 1..{most}"
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return f"{name}={value!r} is not a number"
    return None


def _check_query(query: dict[str, list[str]], endpoint: dict) -> str | None:
    allowed = endpoint.get("query", {})
    for name, values in query.items():
        if name not in allowed:
            return f"query parameter {name!r} is not in the contract"
        for value in values:
            if problem := _check_value(name, value, allowed[name]):
                return problem
    return None


def _check_create(content_type: str, body: bytes, query: dict[str, list[str]]) -> str | None:
    create = CONTRACT["endpoints"]["create"]
    if query:
        return f"POST /v1/dubbing takes no query parameters, got {sorted(query)}"
    if not content_type.lower().startswith(create["content_type"]):
        return f"expected {create['content_type']}, got {content_type or 'nothing'}"
    try:
        parts = _parse_multipart(content_type, body)
    except ValueError as exc:
        return str(exc)
    for name, part in parts.items():
        if name in create["files"]:
            if part.filename is None:
                return f"{name} must be a file"
        elif name not in create["fields"]:
            return f"form field {name!r} is not in the contract"
        elif problem := _check_value(name, part.text(), create["fields"][name]):
            return problem
    missing = [name for name in create["required"] if name not in parts]
    return f"required form field(s) missing: {missing}" if missing else None


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with Content-Length or chunked."""
    if "chunked" in handler.headers.get("transfer-encoding", "").lower():
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()  # CRLF after each chunk
        while handler.rfile.readline().strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


def _send(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
    try:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.file is not None:
            handler.send_header("Content-Length", str(reply.file.stat().st_size))
            handler.end_headers()
            with reply.file.open("rb") as fh:
                shutil.copyfileobj(fh, handler.wfile, 64 * 1024)
        else:
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client gave up (e.g. its timeout fired)
