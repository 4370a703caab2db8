"""One address policy for every remote input fetch (issue 11 items 2 and 3): https only, no
redirects, the connected address checked when the socket opens (so DNS rebinding is covered),
retries on 429/5xx only; ffmpeg/ffprobe read local files with an allow-list of demuxers.

The loopback server is reachable only through a FetchPolicy the test builds in code: the
production policy (STRICT) refuses it, which the CLI tests below show."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import reconcile, store_listing

from reconciler import engine
from reconciler.inputs import InputError
from reconciler.inputs.reader import InputReader
from reconciler.manifest import Source
from reconciler.packager.ffmpeg import MediaError, probe
from reconciler.sources import STRICT, FetchPolicy, SourceRefused
from reconciler.transport import request


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and media.example.test (the test's own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconciler test origin")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("media.example.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "origin.pem", folder / "origin.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Origin:
    """A loopback HTTPS server: `routes` maps a path to (status, headers, body); each request's
    path is recorded; `fail_first` answers the first N requests with 503."""

    def __init__(self, folder: Path) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[str] = []
        self.fail_first = 0
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                origin.requests.append(self.path)
                if len(origin.requests) <= origin.fail_first:
                    status, headers, data = 503, {}, b"busy"
                else:
                    status, headers, data = origin.routes.get(self.path, (404, {}, b"no"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cert, key = _certificate(folder)
        served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        served.load_cert_chain(cert, key)
        self.server.socket = served.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        # Reaches this server: built in code, as only tests do (no flag or variable can).
        self.policy = FetchPolicy(exempt_addresses=frozenset({"127.0.0.1"}),
                                  ssl_context=ssl.create_default_context(cafile=str(cert)))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"


@pytest.fixture
def origin(tmp_path_factory):
    server = Origin(tmp_path_factory.mktemp("origin"))
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_strict_policy_refuses_other_schemes_credentials_and_non_public_addresses():
    for url, why in [("http://example.com/v.mp4", "only https"),
                     ("HTTP://example.com/v.mp4", "only https"),
                     ("ftp://example.com/v.mp4", "only https"),
                     ("https://u:p@example.com/v.mp4", "credentials"),
                     ("https://127.0.0.1/v.mp4", "loopback"),
                     ("https://[::1]/v.mp4", "loopback"),
                     ("https://10.1.2.3/v.mp4", "private"),
                     ("https://169.254.169.254/latest/meta-data", "link-local"),
                     ("https://[::ffff:127.0.0.1]/v.mp4", "loopback")]:
        with pytest.raises(SourceRefused, match=why):
            request(STRICT, "GET", url, "input")


def test_the_resolved_address_is_checked_when_the_socket_opens(origin):
    """DNS rebinding: a name that resolves to loopback is refused at connect time, and the
    connection goes to the address that was checked (the server sees the request only when
    that address is allowed)."""
    origin.routes["/v.mp4"] = (200, {}, b"data")
    rebinding = FetchPolicy(ssl_context=origin.policy.ssl_context,
                            resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(SourceRefused, match="media.example.test resolves to a loopback"):
        request(rebinding, "GET", origin.url("/v.mp4", "media.example.test"), "v.mp4")
    assert origin.requests == []
    exempt = FetchPolicy(exempt_addresses=frozenset({"127.0.0.1"}),
                         ssl_context=origin.policy.ssl_context,
                         resolver=lambda host, port: ["127.0.0.1"])
    resp = request(exempt, "GET", origin.url("/v.mp4", "media.example.test"), "v.mp4")
    assert resp.status_code == 200 and origin.requests == ["/v.mp4"]


def test_redirects_are_never_followed(origin):
    origin.routes["/v.mp4"] = (302, {"Location": origin.url("/inside")}, b"")
    origin.routes["/inside"] = (200, {}, b"secret")
    for method in ("HEAD", "GET"):
        with pytest.raises(InputError if method == "GET" else AssertionError):
            if method == "GET":
                InputReader(origin.policy).fetch(Source("https", origin.url("/v.mp4")),
                                                Path("/nonexistent"))
            else:
                state = InputReader(origin.policy).identify(Source("https", origin.url("/v.mp4")))
                assert state.identity is None and "redirects are not followed" in state.error
                raise AssertionError
    assert "/inside" not in origin.requests


def test_busy_origin_is_retried_and_a_404_is_not(origin, tmp_path):
    origin.routes["/v.mp4"] = (200, {"ETag": '"abc"'}, b"x" * 1000)
    origin.fail_first = 2
    got = InputReader(origin.policy).fetch(Source("https", origin.url("/v.mp4")), tmp_path)
    assert got.read_bytes() == b"x" * 1000 and len(origin.requests) == 3
    origin.requests.clear()
    origin.fail_first = 0
    with pytest.raises(InputError, match="HTTP 404"):
        InputReader(origin.policy).fetch(Source("https", origin.url("/missing.mp4")), tmp_path)
    assert origin.requests == ["/missing.mp4"]


def test_a_remote_video_is_downloaded_and_packaged_locally(origin, media, tmp_path):
    """The positive path, library-level: the test's policy reaches its loopback server; ffmpeg
    and ffprobe read the downloaded file (they are never given a URL)."""
    origin.routes["/lecture.mp4"] = (200, {"ETag": '"v1"'}, (media / "lecture.mp4").read_bytes())
    manifests = tmp_path / "repo" / "manifests"
    manifests.mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    (manifests / "s.yaml").write_text(
        f"sectionId: 11\nvideo: {origin.url('/lecture.mp4')}\n"
        "languages:\n  - code: ko\n    audio: source\n")
    settings = engine.Settings(store_url=f"file://{tmp_path / 'store'}", tmp_dir=tmp_path,
                               fetch_policy=origin.policy)
    outcome = engine.Reconciler(settings).apply(engine.load([manifests]))
    assert outcome.ok, outcome
    assert (tmp_path / "store/assets/curriculumsection/11/master.m3u8").exists()


# -- the CLI (production policy) ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/lecture.mp4", "/redirect"])
def test_cli_refuses_a_loopback_or_redirecting_input_and_publishes_nothing(repo, origin, media,
                                                                           tmp_path, path):
    origin.routes["/lecture.mp4"] = (200, {}, (media / "lecture.mp4").read_bytes())
    origin.routes["/redirect"] = (302, {"Location": origin.url("/lecture.mp4")}, b"")
    store = f"file://{tmp_path / 'store'}"
    url = origin.url(path)
    manifest = repo.write(11, [{"code": "ko", "audio": "source"}], video=url)
    for mode in ("--plan", "--apply"):
        res = reconcile(mode, repo.manifests, "--store", store)
        assert res.code == 1, res
        assert "127.0.0.1 is a loopback address" in res.stdout + res.stderr
        assert "Traceback" not in res.stdout + res.stderr
    assert store_listing(store) == {}
    assert origin.requests == []  # refused before any byte went out
    assert manifest.exists()


# -- item 3: inputs are opened with an allow-list of demuxers, from local files only ------------

PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{target}\n#EXT-X-ENDLIST\n"
CONCAT = "ffconcat version 1.0\nfile '{target}'\n"


@pytest.mark.parametrize("kind, text, target", [
    ("hls", PLAYLIST, "/etc/passwd"),
    ("hls", PLAYLIST, "../../../../etc/hostname"),
    ("concat", CONCAT, "/etc/hostname"),
])
def test_probe_refuses_playlists_and_concat_lists(tmp_path, kind, text, target):
    fake = tmp_path / "video.mp4"
    fake.write_text(text.format(target=target))
    with pytest.raises(MediaError, match=f"is '{kind}' data, not a media file"):
        probe(fake)


@pytest.mark.parametrize("field", ["video", "audio"])
def test_a_playlist_given_as_an_input_is_refused_and_nothing_published(repo, tmp_path, field):
    (repo.root / "media" / "evil.mp4").write_text(PLAYLIST.format(target="/etc/passwd"))
    store = f"file://{tmp_path / 'store'}"
    if field == "video":
        repo.write(11, [{"code": "en", "audio": "../media/en.mp3"}], video="../media/evil.mp4")
    else:
        repo.write(11, [{"code": "en", "audio": "../media/evil.mp4"}])
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1
    assert "is 'hls' data, not a media file" in res.stdout
    assert "root:" not in res.stdout + res.stderr
    files = store_listing(store)
    if field == "video":
        assert files == {}
    else:  # the video is published; the language whose input was a playlist is not
        assert not any("/audio/en/" in k for k in files)
