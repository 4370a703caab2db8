"""`reconcile verify`: the acceptance criteria, executed against the CDN as a player sees it.

For each section: GET master.m3u8 through the CDN, GET every media playlist it names, and
request every object those name (EXT-X-MAP init + every segment), each with an `Origin` header
as a browser sends it. Checks:

  status          200 (206 for the ranged-GET fallback)
  content-type    exactly the metadata table's (`layout.meta_for`)
  cache-control   exactly the metadata table's
  object-type     the object is one the table governs (.m3u8, .m4s, init.mp4, .vtt)
  cors            Access-Control-Allow-Origin is the origin or *
  request         the request got a response at all (DNS, TLS, timeout)
  playlist        the playlist parses
  ext-x-map       every audio and video playlist has EXT-X-MAP (WebVTT ones have none)
  default-audio   exactly one DEFAULT=YES per audio group
  audio-group     a variant names an existing audio group when audio renditions exist
  subtitles-group a variant names the subtitles group when subtitle renditions exist
  codecs          the variant's CODECS lists an audio codec when there are audio renditions
  target-duration one EXT-X-TARGETDURATION across the section; no EXTINF above it
  audio-duration  each audio rendition lasts within one target duration of the video
  language        every expected language (from the manifests) has an audio rendition

Playlists are fetched with GET; other objects with HEAD, falling back to `GET Range: bytes=0-0`
where an endpoint rejects HEAD (405/403/501). Requests run concurrently on one httpx.Client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from . import layout, tls
from .hls import MasterPlaylist, MediaPlaylist, PlaylistError, parse_master, parse_media
from .redaction import redact

DEFAULT_ORIGIN = "http://localhost:3000"
HEAD_REJECTED = frozenset({403, 405, 501})
AUDIO_CODEC_PREFIXES = ("mp4a", "ac-3", "ec-3", "ac-4", "opus", "flac", "fLaC")
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
SUBTITLES_ROLE = "subtitles "
P = TypeVar("P", MasterPlaylist, MediaPlaylist)


@dataclass(frozen=True)
class CheckFailure:
    url: str
    check: str
    expected: str
    actual: str

    def to_json(self) -> dict:
        return {"url": self.url, "check": self.check, "expected": self.expected,
                "actual": self.actual}


@dataclass
class SectionReport:
    section_id: int
    master_url: str
    objects_checked: int = 0
    languages: list[str] = field(default_factory=list)
    subtitles: list[str] = field(default_factory=list)  # LANGUAGE of each subtitle rendition
    failures: list[CheckFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class VerifyReport:
    cdn_base: str
    origin: str
    sections: list[SectionReport]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sections)

    @property
    def failures(self) -> list[CheckFailure]:
        return [f for s in self.sections for f in s.failures]

    @property
    def objects_checked(self) -> int:
        return sum(s.objects_checked for s in self.sections)


# -- HTTP ------------------------------------------------------------------------------------
def _header_checks(url: str, response: httpx.Response, origin: str,
                   ok_statuses: tuple[int, ...] = (200,)) -> list[CheckFailure]:
    if response.status_code not in ok_statuses:
        expected = " or ".join(str(s) for s in ok_statuses)
        return [CheckFailure(url, "status", expected, str(response.status_code))]
    failures = []
    headers = response.headers
    meta = layout.meta_for(urlsplit(url).path)
    if meta is None:
        failures.append(CheckFailure(url, "object-type", "a playlist (.m3u8), segment (.m4s, .vtt) "
                                     "or init.mp4", urlsplit(url).path.rsplit("/", 1)[-1]))
    else:
        for name, expected in meta.headers(served=True).items():
            actual = headers.get(name, "")  # a header the table leaves empty must be absent
            if actual != expected:
                failures.append(CheckFailure(url, name.lower(), expected or "(none)",
                                             actual or "(missing)"))
    acao = headers.get("access-control-allow-origin")
    if acao not in (origin, "*"):
        failures.append(CheckFailure(url, "cors", f"Access-Control-Allow-Origin: {origin} or *",
                                     acao or "(missing)"))
    return failures


def _request_failure(url: str, err: httpx.HTTPError) -> CheckFailure:
    return CheckFailure(url, "request", "an HTTP response", f"{type(err).__name__}: {err}")


@dataclass
class _Fetched:
    url: str
    failures: list[CheckFailure]
    text: str | None = None  # the body of a playlist that came back 200


def _get_playlist(client: httpx.Client, url: str, origin: str) -> _Fetched:
    try:
        response = client.get(url, headers={"Origin": origin})
    except httpx.HTTPError as err:
        return _Fetched(url, [_request_failure(url, err)])
    failures = _header_checks(url, response, origin)
    text = response.content.decode("utf-8", "replace") if response.status_code == 200 else None
    return _Fetched(url, failures, text)


def _probe_object(client: httpx.Client, url: str, origin: str) -> _Fetched:
    headers = {"Origin": origin}
    try:
        response = client.head(url, headers=headers)
        if response.status_code not in HEAD_REJECTED:
            return _Fetched(url, _header_checks(url, response, origin))
        # Some endpoints refuse HEAD: ask for one byte instead and never read the body.
        with client.stream("GET", url, headers={**headers, "Range": "bytes=0-0"}) as ranged:
            return _Fetched(url, _header_checks(url, ranged, origin, (200, 206)))
    except httpx.HTTPError as err:
        return _Fetched(url, [_request_failure(url, err)])


# -- HLS rules -------------------------------------------------------------------------------
def _master_checks(url: str, master: MasterPlaylist, expected: Iterable[str]) -> list[CheckFailure]:
    failures = []
    groups: dict[str, list[dict[str, str]]] = {}
    for media in master.media:
        if media.get("TYPE") == "AUDIO":
            groups.setdefault(media.get("GROUP-ID", ""), []).append(media)
    for group, renditions in groups.items():
        defaults = sum(1 for r in renditions if r.get("DEFAULT") == "YES")
        if defaults != 1:
            failures.append(CheckFailure(url, "default-audio",
                                         f'exactly one DEFAULT=YES in audio group "{group}"',
                                         f"{defaults} renditions with DEFAULT=YES"))
    if groups:
        for attrs, uri in master.variants:
            if attrs.get("AUDIO") not in groups:
                failures.append(CheckFailure(url, "audio-group",
                                             f"variant {uri} names an audio group "
                                             f"({', '.join(sorted(groups))})",
                                             f"AUDIO={attrs.get('AUDIO', '(none)')}"))
            codecs = [c.strip() for c in attrs.get("CODECS", "").split(",") if c.strip()]
            if not any(c.startswith(AUDIO_CODEC_PREFIXES) for c in codecs):
                failures.append(CheckFailure(url, "codecs", f"CODECS of variant {uri} lists an "
                                             "audio codec (mp4a.*)",
                                             f'CODECS="{attrs["CODECS"]}"' if "CODECS" in attrs
                                             else "no CODECS attribute"))
    text_groups = {m.get("GROUP-ID", "") for m in master.media if m.get("TYPE") == "SUBTITLES"}
    for attrs, uri in master.variants if text_groups else ():
        if attrs.get("SUBTITLES") not in text_groups:
            failures.append(CheckFailure(url, "subtitles-group",
                                         f"variant {uri} names a subtitles group "
                                         f"({', '.join(sorted(text_groups))})",
                                         f"SUBTITLES={attrs.get('SUBTITLES', '(none)')}"))
    present = {m.get("LANGUAGE", "").lower() for r in groups.values() for m in r}
    for lang in expected:
        if lang.lower() not in present:
            failures.append(CheckFailure(url, "language",
                                         f"an audio rendition with LANGUAGE={lang}",
                                         "languages in master: "
                                         + (", ".join(sorted(present - {""})) or "none")))
    return failures


@dataclass
class _SectionCheck:
    report: SectionReport
    expected: list[str]
    master: MasterPlaylist | None = None
    # media playlist URL -> role ("video", the audio rendition's LANGUAGE, or "subtitles LANG")
    playlists: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, MediaPlaylist] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)

    def add(self, fetched: _Fetched) -> None:
        self.report.objects_checked += 1
        self.report.failures.extend(fetched.failures)

    def parse(self, fetched: _Fetched, parser: Callable[[str], P], what: str) -> P | None:
        """Count the fetch; the playlist it brought, or None (no body, or unparsable: recorded
        as a failure)."""
        self.add(fetched)
        if fetched.text is None:
            return None
        try:
            return parser(fetched.text)
        except PlaylistError as err:
            self.report.failures.append(CheckFailure(fetched.url, "playlist",
                                                     f"a valid {what} playlist", str(err)))
            return None

    def take_master(self, fetched: _Fetched) -> None:
        self.master = self.parse(fetched, parse_master, "master")
        if self.master is None:
            return
        url = fetched.url
        self.report.failures.extend(_master_checks(url, self.master, self.expected))
        for _attrs, uri in self.master.variants:
            self.playlists.setdefault(urljoin(url, uri), "video")
        for media in self.master.media:
            if media.get("TYPE") == "AUDIO" and media.get("URI"):
                lang = media.get("LANGUAGE", "")
                self.report.languages.append(lang)
                self.playlists.setdefault(urljoin(url, media["URI"]), lang or media["URI"])
            elif media.get("TYPE") == "SUBTITLES" and media.get("URI"):
                self.report.subtitles.append(media.get("LANGUAGE", ""))
                self.playlists.setdefault(urljoin(url, media["URI"]),
                                          f"{SUBTITLES_ROLE}{media.get('LANGUAGE', '')}")

    def take_playlist(self, fetched: _Fetched) -> None:
        playlist = self.parse(fetched, parse_media, "media")
        if playlist is None:
            return
        url = fetched.url
        self.parsed[url] = playlist
        if playlist.map_uri is not None:
            self.objects.append(urljoin(url, playlist.map_uri))
        elif not self.playlists.get(url, "").startswith(SUBTITLES_ROLE):  # WebVTT: no init
            self.report.failures.append(CheckFailure(url, "ext-x-map",
                                                     "#EXT-X-MAP:URI=\"init.mp4\"",
                                                     "no EXT-X-MAP"))
        self.objects.extend(urljoin(url, seg.uri) for seg in playlist.segments)
        for seg in playlist.segments:
            if int(seg.duration + 0.5) > playlist.target_duration:
                self.report.failures.append(CheckFailure(
                    url, "target-duration",
                    f"every EXTINF <= EXT-X-TARGETDURATION {playlist.target_duration} (rounded)",
                    f"{seg.uri} lasts {seg.duration:.3f}s"))

    def cross_checks(self) -> None:
        if not self.parsed:
            return
        master_url = self.report.master_url
        targets = {url: p.target_duration for url, p in self.parsed.items()}
        if len(set(targets.values())) > 1:
            self.report.failures.append(CheckFailure(
                master_url, "target-duration",
                "one EXT-X-TARGETDURATION across the section's media playlists",
                ", ".join(f"{self.playlists[u]}={t}" for u, t in targets.items())))
        videos = [p for u, p in self.parsed.items() if self.playlists[u] == "video"]
        if not videos:
            return
        video = videos[0].duration
        tolerance = max(targets.values())
        for url, playlist in self.parsed.items():
            if self.playlists[url] == "video":
                continue
            if abs(playlist.duration - video) > tolerance:
                self.report.failures.append(CheckFailure(
                    url, "audio-duration",
                    f"within {tolerance}s (one target duration) of the video's {video:.3f}s",
                    f"{playlist.duration:.3f}s"))


def _fan_out(pool: ThreadPoolExecutor, fn: Callable[[str], _Fetched],
             work: list[tuple[_SectionCheck, str]],
             take: Callable[[_SectionCheck, _Fetched], None]) -> None:
    for (section, _url), fetched in zip(work, pool.map(lambda w: fn(w[1]), work), strict=True):
        take(section, fetched)


def verify(
    cdn_base: str,
    section_ids: list[int],
    *,
    origin: str = DEFAULT_ORIGIN,
    expected_languages: dict[int, list[str]] | None = None,
    concurrency: int = 16,
    client: httpx.Client | None = None,
) -> VerifyReport:
    """Check the given sections through the CDN at cdn_base (e.g. https://dxxxx.cloudfront.net
    or the preview's URL). Never raises for what it finds: everything lands in the report."""
    base = cdn_base.rstrip("/")
    expected_languages = expected_languages or {}
    sections = [
        _SectionCheck(SectionReport(sid, layout.master_url(base, sid)),
                 list(expected_languages.get(sid, [])))
        for sid in section_ids
    ]
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=TIMEOUT, verify=tls.context(), limits=httpx.Limits(
            max_connections=concurrency, max_keepalive_connections=concurrency))

    def playlist(url: str) -> _Fetched:
        return _get_playlist(client, url, origin)

    def probe(url: str) -> _Fetched:
        return _probe_object(client, url, origin)

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            # Phase by phase across all sections: masters, media playlists, objects.
            _fan_out(pool, playlist, [(s, s.report.master_url) for s in sections],
                     _SectionCheck.take_master)
            _fan_out(pool, playlist, [(s, u) for s in sections for u in s.playlists],
                     _SectionCheck.take_playlist)
            work = [(s, u) for s in sections for u in dict.fromkeys(s.objects)]
            _fan_out(pool, probe, work, _SectionCheck.add)
    finally:
        if own_client:
            client.close()
    for section in sections:
        section.cross_checks()
    return VerifyReport(base, origin, [s.report for s in sections])


# -- output ----------------------------------------------------------------------------------
def render_text(report: VerifyReport) -> str:
    lines = [f"verify {report.cdn_base} (Origin: {report.origin})"]
    for section in report.sections:
        langs = ", ".join(section.languages) or "no audio renditions"
        if section.subtitles:
            langs += "; subtitles " + ", ".join(section.subtitles)
        if section.ok:
            lines.append(f"section {section.section_id}: ok - {section.objects_checked} objects "
                         f"checked ({langs})")
            continue
        count = len(section.failures)
        lines.append(f"section {section.section_id}: FAILED - {section.objects_checked} objects "
                     f"checked, {count} failure{'s' if count != 1 else ''}")
        by_url: dict[str, list[CheckFailure]] = {}
        for failure in section.failures:
            by_url.setdefault(failure.url, []).append(failure)
        for url, failures in by_url.items():
            lines.append(f"  {url}")
            lines += [f"    {f.check}: expected {f.expected}; got {f.actual}" for f in failures]
    bad = sum(1 for s in report.sections if not s.ok)
    total = len(report.failures)
    summary = (f"{len(report.sections)} sections, {report.objects_checked} objects checked, "
               f"{total} failure{'s' if total != 1 else ''}")
    if report.ok:
        lines.append(f"ok: {summary}")
    else:
        lines.append(f"FAILED: {bad} of {summary}")
    return redact("\n".join(lines) + "\n")  # the CDN URL may carry credentials or a signature


def to_json(report: VerifyReport) -> dict:
    return {
        "ok": report.ok,
        "cdn": redact(report.cdn_base),
        "origin": report.origin,
        "objectsChecked": report.objects_checked,
        "sections": [
            {
                "sectionId": s.section_id,
                "master": redact(s.master_url),
                "ok": s.ok,
                "objectsChecked": s.objects_checked,
                "languages": list(s.languages),
                "subtitles": list(s.subtitles),
                "failures": [{k: redact(v) if isinstance(v, str) else v
                              for k, v in f.to_json().items()} for f in s.failures],
            }
            for s in report.sections
        ],
    }
