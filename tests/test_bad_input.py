"""Bad input, end to end through the CLI on the local store: a clear error naming the section
or language, exit 1, and nothing of the broken rendition published (master never names it)."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from cli_helpers import reconcile, store_listing

from reconciler import layout, samples
from reconciler.store import StoreError

PREFIX = "assets/curriculumsection"


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory, media) -> Path:
    root = tmp_path_factory.mktemp("bad")
    samples.make_tone(root / "audio-only.m4a", hz=440, seconds=5)
    (root / "empty.mp3").write_bytes(b"")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=48000:cl=stereo", "-t", "5", "-y", str(root / "silent.wav")],
                   check=True)
    samples.make_tone(root / "long.mp3", hz=500, seconds=50)  # ten times the video
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=24:duration=4", "-c:v", "mpeg4", "-y",
                    str(root / "mpeg4.mp4")], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(media / "lecture.mp4"), "-c", "copy",
                    "-movflags", "+faststart", "-y", str(root / "faststart.mp4")], check=True)
    whole = (root / "faststart.mp4").read_bytes()  # index first: ffmpeg packages what is there
    (root / "half.mp4").write_bytes(whole[: len(whole) // 2])
    return root


@pytest.fixture
def store(tmp_path) -> str:
    return f"file://{tmp_path / 'store'}"


def published(store: str, sid: int) -> list[str]:
    root = Path(store[len("file://"):]) / PREFIX / str(sid)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


def refused(res, *needles: str) -> None:
    """Exit 1 and one clear line on stderr naming what is wrong (no traceback)."""
    assert res.code == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    line = next((x for x in res.stderr.splitlines() if all(n in x for n in needles)), None)
    assert line is not None, (needles, res.stderr)


def master_languages(store: str, sid: int) -> list[str]:
    master = Path(store[len("file://"):]) / PREFIX / str(sid) / "master.m3u8"
    return re.findall(r'LANGUAGE="([^"]+)"', master.read_text()) if master.exists() else []


@pytest.mark.parametrize("video, message", [
    ("audio-only.m4a", "has no video stream"),
    ("mpeg4.mp4", "only H.264 is packaged"),
])
def test_unusable_video_fails_the_section_and_publishes_nothing(repo, bad_media, store, video,
                                                                message):
    (repo.root / "media" / video).write_bytes((bad_media / video).read_bytes())
    repo.write(11, [{"code": "en", "audio": "../media/en.mp3"}], video=f"../media/{video}")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1
    assert "section 11: FAILED" in res.stdout and "package video" in res.stdout
    assert message in res.stdout
    assert published(store, 11) == []


def test_truncated_video_reports_ffmpegs_own_words(repo, store):
    repo.write(11, [{"code": "en", "audio": "../media/en.mp3"}], video="../media/truncated.mp4")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1 and "package video" in res.stdout
    assert re.search(r"\| .*(moov atom not found|Invalid data)", res.stdout), res.stdout
    assert published(store, 11) == []


@pytest.mark.parametrize("audio, message", [
    ("empty.mp3", "en: package audio:"),
    ("silent.wav", "audio is silent"),
    ("long.mp3", "more than 2x): wrong file?"),
])
def test_bad_audio_fails_that_language_only(repo, bad_media, store, audio, message):
    (repo.root / "media" / audio).write_bytes((bad_media / audio).read_bytes())
    repo.write(11, [{"code": "ko", "audio": "source", "default": True},
                    {"code": "en", "audio": f"../media/{audio}"}])
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1
    assert message in res.stdout
    assert master_languages(store, 11) == ["ko"]
    assert not any(k.startswith("audio/en/") for k in published(store, 11))


def test_video_without_audio_track_cannot_serve_source_language(repo, store):
    repo.write(11, [{"code": "ko", "audio": "source"}, {"code": "en", "audio": "../media/en.mp3"}],
               video="../media/silent.mp4")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1
    assert "ko: package audio: the video has no audio track" in res.stdout
    assert master_languages(store, 11) == ["en"]


@pytest.mark.parametrize("value, message", [
    ("ftp://host/x.mp3", "unsupported scheme 'ftp'"),
    ("http://host/x.mp3", "unsupported scheme 'http'"),
    ("https://user:hunter2@host/x.mp3", "must not embed credentials"),
    ("../../../etc/passwd", "path leaves the repository"),
    ("/etc/passwd", "absolute paths are not allowed"),
    ("%2e%2e/%2e%2e/%2e%2e/etc/passwd", "path leaves the repository"),
    ("s3://bucket/../other/x.mp3", "must not contain '..'"),
])
def test_bad_sources_are_refused_before_any_store_access(repo, value, message):
    repo.write(11, [{"code": "en", "audio": value}])
    res = reconcile("--plan", repo.manifests, "--store", "s3://never-contacted")
    assert res.code == 1
    assert "languages[0].audio" in res.stderr and message in res.stderr
    assert "hunter2" not in res.stderr + res.stdout


def test_presigned_signature_never_printed(repo, store):
    repo.write(11, [{"code": "ko", "audio": "source"},
                    {"code": "en", "audio":
                     "https://127.0.0.1:9/dub.mp3?X-Amz-Signature=SECRETSIGNATURE123"}])
    for args in (("--plan",), ("--plan", "--format", "json"), ("--apply",)):
        res = reconcile(*args, repo.manifests, "--store", store)
        assert res.code == 1
        assert "SECRETSIGNATURE123" not in res.stdout + res.stderr
        assert "https://127.0.0.1:9/dub.mp3?" in res.stdout + res.stderr


def test_no_subprocess_goes_through_a_shell():
    root = Path(__file__).resolve().parent.parent / "reconciler"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text, path
        assert "os.system(" not in text and "os.popen(" not in text, path


def test_the_repositorys_example_manifests_are_valid():
    root = Path(__file__).resolve().parent.parent
    res = reconcile("validate", root / "manifests")
    assert res.code == 0, res.stderr
    assert "sections 11, 12" in res.stdout


@pytest.mark.parametrize("name", ["Korean\n", "Ko\u2028rean", "Korean\x85", "Ko\x00rean"])
def test_language_name_that_would_break_master_is_refused(repo, store, name):
    repo.write(11, [{"code": "ko", "audio": "source", "default": True},
                    {"code": "en", "audio": "../media/en.mp3"}])
    assert reconcile("--apply", repo.manifests, "--store", store).code == 0
    before = store_listing(store)
    path = repo.write(11, [{"code": "ko", "audio": "source", "default": True, "name": name},
                           {"code": "en", "audio": "../media/en.mp3"}])
    res = reconcile("--apply", repo.manifests, "--store", store)
    refused(res, str(path), "languages[0].name", "line break")
    assert store_listing(store) == before


@pytest.mark.parametrize("field, value", [("code", "en\n"), ("video", "../media/lecture.mp4\n"),
                                          ("sourceLanguage", "ko\n"), ("audio", "../m.mp3\x00")])
def test_trailing_newline_or_control_in_any_anchored_field_is_refused(repo, store, field, value):
    lang = {"code": "en", "audio": "../media/en.mp3"}
    extra: dict = {}
    if field in ("code", "audio"):
        lang[field] = value
    elif field == "video":
        extra["video"] = value
    else:
        extra[field] = value
    path = repo.write(11, [lang], **extra)
    res = reconcile("--apply", repo.manifests, "--store", store)
    refused(res, str(path), field)
    assert store_listing(store) == {}


def test_video_cut_short_with_its_index_intact_is_refused_not_published(repo, bad_media, store):
    """ffmpeg exits 0 on an mp4 cut in half whose moov comes first; the packaged rendition is
    compared with what the input says it lasts."""
    (repo.root / "media" / "half.mp4").write_bytes((bad_media / "half.mp4").read_bytes())
    repo.write(11, [{"code": "ko", "audio": "source"}], video="../media/half.mp4")
    res = reconcile("--apply", repo.manifests, "--store", store)
    assert res.code == 1
    assert re.search(r"package video: packaged \d\.\ds but the input lasts 5\.0s", res.stdout), \
        res.stdout
    assert store_listing(store) == {}


# -- hostile manifests, through the CLI: one line each, exit 1, the store untouched -----------

BOMB = ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n")
HEAD = "video: ../media/lecture.mp4\nlanguages:\n  - code: en\n    audio: ../media/en.mp3\n"
MANIFESTS = {
    "alias bomb": (BOMB + "sectionId: 11\n" + HEAD, ":1:", "anchors and aliases"),
    "too big": ("sectionId: 11\n" + HEAD + "#" + "x" * 66_000 + "\n", "", "the limit is 65536"),
    "octal-looking id": ("sectionId: 013\n" + HEAD, "sectionId", "not of type 'integer'"),
    "hex id": ("sectionId: 0x0B\n" + HEAD, "sectionId", "not of type 'integer'"),
    "underscore id": ("sectionId: 1_1\n" + HEAD, "sectionId", "not of type 'integer'"),
    "id over 2^31-1": ("sectionId: 2147483648\n" + HEAD, "sectionId", "maximum"),
    "duplicate key": ("sectionId: 11\nsectionId: 12\n" + HEAD, ":2:", "duplicate key"),
    "nested in a value": ("sectionId: 11\n" + HEAD + "dubbing: " + "[" * 5000 + "]" * 5000
                          + "\n", ":6:", "nested deeper than 16 levels"),
    "nested document": ("[" * 30_000 + "]" * 30_000 + "\n", ":1:", "nested deeper than 16"),
    "long value": ("sectionId: 11\nvideo: ftp://" + "a" * 5000 + "\nlanguages:\n  - code: en\n",
                   "video", "is too long"),
}


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_hostile_manifest_is_refused_in_one_line_and_nothing_is_written(repo, store, case):
    text, where, message = MANIFESTS[case]
    repo.write(12, [{"code": "en", "audio": "../media/en.mp3"}])
    assert reconcile("--apply", repo.manifests, "--store", store).code == 0
    before = store_listing(store)
    path = repo.manifests / "section-11.yaml"
    path.write_text(text)
    for args in (("validate", repo.manifests), ("--apply", repo.manifests, "--store", store)):
        res = reconcile(*args)
        refused(res, str(path), where, message)
        assert len(res.stderr) < 2000, res.stderr[:500]
        assert all(len(line) < 400 for line in res.stderr.splitlines())
    assert store_listing(store) == before


def test_validate_reports_every_problem_of_every_manifest_in_one_run(repo, tmp_path):
    (repo.root / "media" / "dir.mp3").mkdir()
    a = repo.write(11, [{"code": "en", "audio": "../media/missing.mp3"}])
    b = repo.write(12, [{"code": "en_US"}, {"code": "ja", "audio": "../media/dir.mp3"}])
    b.write_text(b.read_text().replace("sectionId: 12", "sectionId: 11"))
    res = reconcile("validate", repo.manifests)
    assert res.code == 1
    lines = [x for x in res.stderr.splitlines() if x.startswith("Error:")]
    assert any(str(a) in x and "languages[0].audio: no such file" in x for x in lines)
    assert any(str(b) in x and "languages[0].code" in x for x in lines)
    assert any(str(b) in x and "languages[1].audio: not a regular file" in x for x in lines)
    assert any(str(b) in x and "duplicate sectionId 11" in x for x in lines)
    assert "4 problems in manifests" in res.stderr


# -- store URLs (issue 11 item 6) --------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://x", "S3:/prod", "./store", "store", "file://relative/dir",
                                 "s3://", "s3://Bad_Bucket", "http://bucket", "s3:///x"])
@pytest.mark.parametrize("command", [("--plan",), ("--apply",), ("preview", "--port", "0"),
                                     ("unlock", "11", "--lock-id", "x")])
def test_a_mistyped_store_url_exits_1_naming_the_accepted_forms(repo, tmp_path, monkeypatch, url,
                                                               command):
    repo.write(11, [{"code": "en", "audio": "../media/en.mp3"}])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [*command, "--store", url]
    if command[0].startswith("--"):
        args.insert(1, str(repo.manifests))
    res = reconcile(*args)
    refused(res, "is not", "s3://BUCKET[/PREFIX] or file:///ABSOLUTE/DIR")
    assert list(work.iterdir()) == []  # no folder named after the typo


def test_store_scheme_is_case_insensitive_and_a_prefix_keeps_every_key_under_it(repo, bucket, s3):
    repo.write(11, [{"code": "ko", "audio": "source"}])
    res = reconcile("--apply", repo.manifests, "--store", f"S3://{bucket}/team/a")
    assert res.code == 0, res.stdout + res.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assets = [k for k in keys if k != f"team/a/{layout.STATE_INDEX_KEY}"]  # + the state index
    assert assets and all(k.startswith("team/a/assets/curriculumsection/11/") for k in assets)
    assert len(keys) == len(assets) + 1, keys
    assert reconcile("--plan", repo.manifests, "--store", f"s3://{bucket}/team/a").code == 0


# -- every subcommand: one line and exit 1, never a traceback (issue 11 item 7) ----------------

def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_subcommand_against_an_unreachable_store_or_unwritable_folder(repo, tmp_path):
    import os
    import sys

    repo.write(11, [{"code": "en", "audio": "../media/en.mp3"}])
    dead = f"http://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "AWS_ENDPOINT_URL": dead, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "example", "AWS_REGION": "us-east-1",
           "RECONCILER_API_TOKEN": "t", "AWS_BUCKET_NAME": "unreachable-bucket",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # this checkout's code
    env.pop("CLOUDFRONT_DISTRIBUTION_ID", None)
    nope = "/proc/nope"  # not creatable, even by root
    m = str(repo.manifests)
    runs = {
        "plan": ["--plan", m, "--store", "s3://unreachable-bucket"],
        "apply": ["--apply", m, "--store", "s3://unreachable-bucket"],
        "apply, unwritable store": ["--apply", m, "--store", f"file://{nope}/store"],
        "validate, no such folder": ["validate", nope],
        "show": ["show", f"{nope}/plan.json"],
        "demo": ["demo", "--dir", nope],
        "verify": ["verify", m, "--cdn", dead],
        "preview": ["preview", "--store", "s3://unreachable-bucket", "--port", "0"],
        "unlock": ["unlock", "11", "--lock-id", "x", "--store", "s3://unreachable-bucket"],
        "serve": ["serve", "--store", "s3://unreachable-bucket", "--port", "0",
                  "--manifests", m, "--data-dir", str(tmp_path / "api")],
        "serve, unwritable data dir": ["serve", "--port", "0", "--manifests", m,
                                       "--data-dir", nope],
    }
    for what, args in runs.items():
        proc = subprocess.run([sys.executable, "-m", "reconciler.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, (what, out[-2000:])
        assert "Traceback" not in out, (what, out[-3000:])
        assert "Error:" in proc.stderr or re.search(r"(?i)error|FAILED", proc.stdout), \
            (what, out[-2000:])


def test_verify_never_prints_the_cdn_urls_credentials_or_signature(repo):
    repo.write(11, [{"code": "en", "audio": "../media/en.mp3"}])
    cdn = f"https://user:pw-SECRET1@127.0.0.1:{_closed_port()}/?X-Amz-Signature=SIG-SECRET2"
    for fmt in ("text", "json"):
        res = reconcile("verify", repo.manifests, "--cdn", cdn, "--format", fmt)
        assert res.code == 1
        out = res.stdout + res.stderr
        assert "SECRET1" not in out and "SIG-SECRET2" not in out, out
        assert "127.0.0.1" in out


def test_serve_never_prints_credentials_given_in_allowed_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("RECONCILER_ALLOWED_SOURCES",
                       "https://user:hunter2@media.example/x?sig=S3CR3T")
    monkeypatch.setenv("RECONCILER_API_TOKEN", "t")
    res = reconcile("serve", "--port", "0", "--store", f"file://{tmp_path}/s",
                    "--data-dir", tmp_path / "api", "--manifests", tmp_path)
    refused(res, "allowed source")
    assert "hunter2" not in res.stderr and "S3CR3T" not in res.stderr


def test_the_elevenlabs_key_is_redacted_in_any_case():
    from reconciler.dubbing.elevenlabs import ElevenLabs

    client = ElevenLabs("sk_MixedCaseKey123", base_url="http://127.0.0.1:9")
    text = client._redact("bad key SK_MIXEDCASEKEY123 / sk_mixedcasekey123 / sk_MixedCaseKey123")
    assert "mixedcasekey" not in text.lower() and text.count("[redacted]") == 3


def test_local_store_and_preview_refuse_symlinks_out_of_the_store(repo, store, tmp_path):
    from reconciler.preview import make_server
    from reconciler.store import open_store

    repo.write(11, [{"code": "ko", "audio": "source"}])
    assert reconcile("--apply", repo.manifests, "--store", store).code == 0
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:SECRET")
    root = Path(store[len("file://"):])
    init = root / PREFIX / "11/video/init.mp4"
    init.unlink()
    init.symlink_to(secret)
    (root / PREFIX / "12").symlink_to(tmp_path, target_is_directory=True)
    local = open_store(store)
    assert f"{PREFIX}/11/video/init.mp4" not in local.list(f"{PREFIX}/11/")
    with pytest.raises(StoreError, match="resolves outside the store"):
        local.get(f"{PREFIX}/11/video/init.mp4")
    with pytest.raises(StoreError, match="resolves outside the store"):
        local.head(f"{PREFIX}/12/secret.txt")
    server = make_server(local)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for key in (f"{PREFIX}/11/video/init.mp4", f"{PREFIX}/12/secret.txt"):
            res = httpx.get(f"{server.url}/{key}")
            # The store refuses it (a store error: 502 since issue 12), and nothing leaks.
            assert res.status_code == 502 and "SECRET" not in res.text
    finally:
        server.shutdown()
        server.server_close()
