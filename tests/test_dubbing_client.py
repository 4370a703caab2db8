"""The ElevenLabs dubbing client against the fake ElevenLabs HTTP server (tests/fake_elevenlabs.py).

One fake server serves the whole module; an autouse fixture resets its knobs and observations
before each test. Clients poll every 20 ms and back off for ~10 ms so the file runs in seconds;
only the tests about Retry-After really wait (about a second each).
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fake_elevenlabs import CONTRACT, FFMPEG, FFPROBE, Clock, FakeElevenLabs, probe_duration
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.dubbing import CreateUnknown, DubbingError
from reconciler.dubbing.answers import api_message
from reconciler.dubbing.elevenlabs import ElevenLabs
from reconciler.dubbing_languages import DUBBING_LANGUAGES, elevenlabs_code
from reconciler.pay_once import Spend, create_or_adopt

STEPS = 2  # metadata polls until a dub is terminal, unless a test says otherwise


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs(steps_to_dub=STEPS) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeElevenLabs) -> Iterator[None]:
    fake.reset()
    fake.steps_to_dub = STEPS
    fake.audio_format = "mp3"
    fake.retry_after = 1
    fake.clock = time.monotonic
    yield
    assert fake.violations == [], "requests ElevenLabs would refuse (its published contract)"


@pytest.fixture
def make_client(fake: FakeElevenLabs) -> Iterator[Callable[..., ElevenLabs]]:
    """Fast-polling clients pointed at the fake; closed after the test."""
    made: list[ElevenLabs] = []

    def make(**kw: object) -> ElevenLabs:
        settings: dict = dict(poll_interval=0.02, poll_timeout=5.0, max_attempts=4,
                              timeout=5.0, backoff_base=0.01)
        settings.update(kw)
        api_key = settings.pop("api_key", fake.api_key)
        base_url = settings.pop("base_url", fake.base_url)
        client = ElevenLabs(api_key, base_url, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., ElevenLabs]) -> ElevenLabs:
    return make_client()


def _tone(path: Path, seconds: float, hz: int = 330) -> Path:
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency={hz}:duration={seconds}", str(path)],
        check=True, capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def lecture(media_dir: Path) -> Path:
    """A 2.5 s lecture track to dub."""
    return _tone(media_dir / "lecture-01.mp3", 2.5)


def _probe(path: Path) -> dict:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_type,codec_name:format=duration",
         "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    )
    info = json.loads(out.stdout)
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    return {"codecs": [s["codec_name"] for s in audio],
            "duration": float(info["format"]["duration"])}


def _dubbed(client: ElevenLabs, lecture: Path, lang: str = "de") -> str:
    dubbing_id = client.create(lecture, target_lang=lang, name="Lecture 1")
    client.wait(dubbing_id, language=lang)
    return dubbing_id


# -- happy path -------------------------------------------------------------------------------


def test_create_posts_documented_multipart_fields(fake, client, lecture):
    dubbing_id = client.create(
        lecture, target_lang="de", source_lang="en", name="Lecture 1 (de)",
        num_speakers=2, watermark=True,
    )

    assert fake.requests == [("POST", "/v1/dubbing")]  # accepted: so xi-api-key was right
    [sent] = fake.creates
    assert sent["dubbing_id"] == dubbing_id
    assert {k: sent[k] for k in ("target_lang", "source_lang", "num_speakers", "watermark",
                                 "name")} == {
        "target_lang": "de", "source_lang": "en", "num_speakers": "2", "watermark": "true",
        "name": "Lecture 1 (de)",
    }
    assert sent["file_name"] == "lecture-01.mp3"
    assert sent["file_content_type"] == "audio/mpeg"
    assert sent["file_size"] == lecture.stat().st_size
    assert sent["file_sha256"] == hashlib.sha256(lecture.read_bytes()).hexdigest()


def test_create_defaults(fake, client, lecture):
    client.create(lecture, target_lang="fr", name="n")
    [sent] = fake.creates
    assert (sent["source_lang"], sent["num_speakers"], sent["watermark"]) == ("auto", "0", "false")


@pytest.mark.parametrize(
    ("suffix", "content_type"),
    [(".wav", "audio/wav"), (".flac", "audio/flac"), (".m4a", "audio/mp4")],
)
def test_upload_content_type_follows_suffix(fake, client, media_dir, suffix, content_type):
    source = _tone(media_dir / f"clip{suffix}", 0.5)
    client.create(source, target_lang="de", name="clip")
    [sent] = fake.creates
    assert sent["file_content_type"] == content_type
    assert sent["file_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_status_progresses_to_dubbed(fake, client, lecture):
    fake.steps_to_dub = 4
    dubbing_id = client.create(lecture, target_lang="de", source_lang="en", name="L1")

    seen = [client.status(dubbing_id) for _ in range(5)]

    assert [m["status"] for m in seen] == ["queued", "preparing", "dubbing", "dubbed", "dubbed"]
    last = seen[-1]
    assert last["dubbing_id"] == dubbing_id
    assert last["name"] == "L1"
    assert last["target_languages"] == ["de"]
    assert last["source_language"] == "en"
    assert last["error"] is None
    assert last["media_metadata"]["duration"] == pytest.approx(probe_duration(lecture), abs=0.01)


def test_wait_polls_until_dubbed(fake, client, lecture):
    fake.steps_to_dub = 3
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    client.wait(dubbing_id, language="de")
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") == 3


def test_download_writes_playable_mp3(fake, client, lecture, tmp_path):
    dubbing_id = _dubbed(client, lecture)

    written = client.download(dubbing_id, "de", tmp_path / "lecture-01.de")

    assert written == tmp_path / "lecture-01.de.mp3"
    info = _probe(written)
    assert info["codecs"] == ["mp3"]
    assert info["duration"] == pytest.approx(probe_duration(lecture), abs=0.15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lecture-01.de.mp3"]  # no .part left


def test_mp4_answer_gives_mp4_path(fake, client, lecture, tmp_path):
    fake.audio_format = "mp4"
    dubbing_id = _dubbed(client, lecture, "fr")

    written = client.download(dubbing_id, "fr", tmp_path / "fr.mp3")

    assert written == tmp_path / "fr.mp4"
    assert _probe(written)["codecs"] == ["aac"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fr.mp4"]


def test_languages_get_distinct_tracks(fake, client, lecture, tmp_path):
    tracks = [client.download(_dubbed(client, lecture, lang), lang, tmp_path / lang)
              for lang in ("de", "es")]
    assert tracks[0].read_bytes() != tracks[1].read_bytes()


# -- retries ----------------------------------------------------------------------------------


def test_early_download_retries_425_until_dubbed(fake, make_client, lecture, tmp_path):
    client = make_client(max_attempts=12, backoff_base=0.02)
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    poller_errors: list[BaseException] = []

    def finish_dub_later() -> None:
        try:
            time.sleep(0.15)
            make_client().wait(dubbing_id)
        except BaseException as exc:  # surfaced by the assertion below
            poller_errors.append(exc)

    poller = threading.Thread(target=finish_dub_later)
    poller.start()
    written = client.download(dubbing_id, "de", tmp_path / "de")
    poller.join()

    assert poller_errors == []
    audio = f"/v1/dubbing/{dubbing_id}/audio/de"
    assert ("GET", audio, 425) in fake.responses
    assert ("GET", audio, 200) in fake.responses
    assert _probe(written)["codecs"] == ["mp3"]


def test_429_retry_after_is_honoured(fake, client, lecture):
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    fake.fail_next = [429]

    started = time.monotonic()
    meta = client.status(dubbing_id)
    elapsed = time.monotonic() - started

    assert meta["dubbing_id"] == dubbing_id
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") == 2
    assert elapsed >= 0.95  # Retry-After: 1, although the client's own backoff is ~10 ms


def test_retry_after_is_capped(fake, make_client, lecture):
    client = make_client(max_backoff=0.2)
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    fake.retry_after = 30
    fake.fail_next = [429]

    started = time.monotonic()
    client.status(dubbing_id)
    assert time.monotonic() - started < 10  # far below the 30 s asked for, loaded or not


def test_concurrency_limit_429_is_waited_out(fake, make_client, lecture):
    # Enough attempts (1 s Retry-After each) that a loaded machine still finishes the first dub
    # before the second create gives up.
    client = make_client(max_attempts=10)
    fake.concurrent_limit = 1
    first = client.create(lecture, target_lang="de", name="L1")

    def finish_first_after_a_429() -> None:
        # The first dub advances only when polled: poll it once the second create was refused
        # (ffprobe of the upload inside the fake can take a while on a loaded machine).
        deadline = time.monotonic() + 10
        while ("POST", "/v1/dubbing", 429) not in fake.responses and time.monotonic() < deadline:
            time.sleep(0.02)
        make_client().wait(first)

    poller = threading.Thread(target=finish_first_after_a_429)
    poller.start()

    second = client.create(lecture, target_lang="fr", name="L1")
    poller.join()

    assert ("POST", "/v1/dubbing", 429) in fake.responses
    assert [c["dubbing_id"] for c in fake.creates] == [first, second]


def test_5xx_recovers_within_max_attempts(fake, client, lecture):
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    fake.fail_next = [500, 503]
    assert client.status(dubbing_id)["dubbing_id"] == dubbing_id
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") == 3


def test_5xx_gives_up_after_max_attempts(fake, make_client, lecture):
    client = make_client(max_attempts=3)
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    fake.fail_next = [500] * 5

    with pytest.raises(DubbingError) as raised:
        client.status(dubbing_id)

    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") == 3
    assert raised.value.status_code == 500
    assert raised.value.reason == "An internal error occurred."
    assert raised.value.dubbing_id == dubbing_id


def test_timeout_is_retried(fake, make_client, lecture):
    # The upload gets the default timeout (a loaded machine can take more than a second to
    # post it); only the status read is short, and the stall is well past it.
    dubbing_id = make_client().create(lecture, target_lang="de", name="L1")
    client = make_client(timeout=1.0)
    fake.stall_next = [3.0]
    assert client.status(dubbing_id)["dubbing_id"] == dubbing_id
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_errors_retried_then_reported(make_client, caplog):
    client = make_client(base_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=3)
    with (caplog.at_level(logging.WARNING, logger="reconciler.dubbing.elevenlabs"),
          pytest.raises(DubbingError, match="ConnectError")):
        client.status("abc")
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2


# -- failing fast -----------------------------------------------------------------------------


def test_flat_envelope_400_fails_fast_with_api_message(fake, client, lecture):
    fake.reject_languages = {"ko": "Korean is not available for this source."}

    with pytest.raises(DubbingError) as raised:
        client.create(lecture, target_lang="ko", name="L1")

    assert raised.value.reason == "Korean is not available for this source."
    assert raised.value.status_code == 400
    assert raised.value.language == "ko"
    assert fake.requests == [("POST", "/v1/dubbing")]
    assert fake.creates == []


def test_detail_envelope_401_message(fake, make_client, lecture):
    client = make_client(api_key="sk_wrong_key")
    with pytest.raises(DubbingError) as raised:
        client.create(lecture, target_lang="de", name="L1")
    assert raised.value.reason == "Invalid API key"
    assert raised.value.status_code == 401
    assert fake.requests == [("POST", "/v1/dubbing")]


def test_unknown_language_download_fails_fast(fake, client, lecture, tmp_path):
    dubbing_id = _dubbed(client, lecture, "de")
    with pytest.raises(DubbingError) as raised:
        client.download(dubbing_id, "es", tmp_path / "es")
    assert raised.value.status_code == 404
    assert raised.value.reason == f"Language es not found in dubbing {dubbing_id}."
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}/audio/es") == 1
    assert list(tmp_path.iterdir()) == []


def test_validation_errors_are_readable(fake):
    """The fake answers FastAPI-style 422s and api_message() flattens them."""
    resp = httpx.post(f"{fake.base_url}/v1/dubbing", headers={"xi-api-key": fake.api_key},
                      data={"name": "no file, no language"})
    assert resp.status_code == 422
    assert api_message(resp) == ("request: expected multipart/form-data, got "
                                 "application/x-www-form-urlencoded")
    assert fake.violations == [f"POST /v1/dubbing: {api_message(resp)[len('request: '):]}"]
    fake.violations.clear()


@pytest.mark.parametrize(("method", "path", "params", "files", "broken"), [
    ("POST", "/v1/dubbing", None, {"file": ("a.mp3", b"x", "audio/mpeg")}, "missing"),
    ("POST", "/v1/dubbing", None, {"file": ("a.mp3", b"x", "audio/mpeg"),
                                   "target_lang": (None, "pt-BR")}, "'pt-BR' is not"),
    ("POST", "/v1/dubbing", None, {"file": ("a.mp3", b"x", "audio/mpeg"),
                                   "target_lang": (None, "pt"), "speed": (None, "2")}, "speed"),
    ("POST", "/v1/dubbing", None, {"file": ("a.mp3", b"x", "audio/mpeg"),
                                   "target_lang": (None, "pt"), "watermark": (None, "yes")},
     "not a boolean"),
    ("GET", "/v1/dubbing", {"page_size": "500"}, None, "out of 1..200"),
    ("GET", "/v1/dubbing", {"order_direction": "desc"}, None, "not one of"),
    ("GET", "/v1/dubbing", {"sort": "name"}, None, "'sort'"),
    ("GET", "/v1/dubbing/abc/audio/zh-Hans", None, None, "'zh-Hans' is not"),
    ("GET", "/v1/dubbing/abc/transcript/pt", {"format_type": "vtt"}, None, "not one of"),
    ("GET", "/v1/dubbings", None, None, "not an endpoint"),
])
def test_fake_refuses_what_the_published_contract_refuses(fake, method, path, params, files,
                                                           broken):
    """The fake is only as good as its contract: each request the real API would refuse is
    answered 422 and recorded, so a test sending one fails."""
    resp = httpx.request(method, fake.base_url + path, params=params, files=files,
                         headers={"xi-api-key": fake.api_key})
    assert resp.status_code == 422
    [violation] = fake.violations
    assert broken in violation and violation.startswith(f"{method} {path}: ")
    fake.violations.clear()


def test_failed_dub_raises_with_the_api_error(fake, client, lecture):
    fake.fail_languages = {"ja": "Speech could not be transcribed."}
    dubbing_id = client.create(lecture, target_lang="ja", name="L1")

    with pytest.raises(DubbingError) as raised:
        client.wait(dubbing_id, language="ja")

    assert raised.value.reason == "Speech could not be transcribed."
    assert (raised.value.language, raised.value.dubbing_id) == ("ja", dubbing_id)


def test_poll_timeout_raises(fake, make_client, lecture):
    client = make_client(poll_timeout=0.3)
    fake.steps_to_dub = 10_000
    dubbing_id = client.create(lecture, target_lang="de", name="L1")

    started = time.monotonic()
    with pytest.raises(DubbingError, match="after 0.3s") as raised:
        client.wait(dubbing_id, language="de")

    assert time.monotonic() - started >= 0.3  # the message names the 0.3 s limit it obeyed
    assert raised.value.dubbing_id == dubbing_id
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") >= 3


# -- configuration and secrecy ----------------------------------------------------------------


def test_from_env_requires_the_key(monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    with pytest.raises(DubbingError, match="ELEVENLABS_API_KEY"):
        ElevenLabs.from_env()


def test_from_env_reads_settings(fake, monkeypatch, lecture):
    monkeypatch.setenv("ELEVENLABS_API_KEY", fake.api_key)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake.base_url)
    monkeypatch.setenv("ELEVENLABS_POLL_INTERVAL", "0.01")
    monkeypatch.setenv("ELEVENLABS_POLL_TIMEOUT", "7")
    with ElevenLabs.from_env(backoff_base=0.01) as client:
        assert (client.base_url, client.poll_interval, client.poll_timeout) == (
            fake.base_url, 0.01, 7.0)
        client.create(lecture, target_lang="de", name="L1")
    assert len(fake.creates) == 1


def _all_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def test_api_key_never_appears_in_errors_or_logs(fake, make_client, lecture, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    good = make_client(max_attempts=2, poll_timeout=0.1)
    leaky = f"echo of {fake.api_key}"
    fake.reject_languages = {"ko": leaky}  # an API message that (absurdly) echoes the key
    fake.fail_languages = {"ja": leaky}
    errors: list[DubbingError] = []

    def expect_error(call: Callable[[], object]) -> None:
        with pytest.raises(DubbingError) as raised:
            call()
        errors.append(raised.value)

    expect_error(lambda: good.create(lecture, target_lang="ko", name="L1"))
    failing = good.create(lecture, target_lang="ja", name="L1")
    expect_error(lambda: good.wait(failing))
    fake.fail_next = [500, 500]
    expect_error(lambda: good.status(failing))
    fake.steps_to_dub = 10_000
    expect_error(lambda: good.wait(good.create(lecture, target_lang="de", name="L1")))
    expect_error(lambda: good.download(failing, "ja", tmp_path / "ja"))
    secret = "sk_live_0123456789abcdef0123456789abcdef"
    expect_error(lambda: make_client(api_key=secret).status(failing))
    unreachable = make_client(api_key=secret, base_url=f"http://127.0.0.1:{_closed_port()}",
                              max_attempts=2)
    expect_error(lambda: unreachable.status(failing))

    assert "[redacted]" in errors[0].reason and "[redacted]" in errors[1].reason
    for exc in errors:
        assert fake.api_key not in _all_text(exc)
        assert secret not in _all_text(exc)
    assert fake.api_key not in repr(good) and secret not in repr(unreachable)
    assert fake.api_key not in caplog.text and secret not in caplog.text


# -- a create is paid once (issue 20) ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["502", "drop", "stall"])
def test_a_create_that_may_have_been_accepted_is_never_sent_again(fake, make_client, lecture,
                                                                   fault):
    """Accepted, then answered 502, dropped, or answered after the read timeout: one create
    only, CreateUnknown, and the dub is found by its name."""
    client = make_client(timeout=1.0)
    fake.stall_seconds = 2.0
    fake.after_accept["de"] = [fault]
    with pytest.raises(CreateUnknown):
        client.create(lecture, target_lang="de", name="L1-unique")
    assert fake.count("POST", "/v1/dubbing") == 1
    assert client.find("L1-unique") == fake.creates[0]["dubbing_id"]


def test_find_reads_every_page_newest_first(fake, client, lecture):
    first = client.create(lecture, target_lang="de", name="mine")
    fake.other_dubs(450)
    assert client.find("mine") == first
    assert client.find("nobody's") is None
    assert [q.get("cursor") for q in fake.lists] == [None, "page-200", "page-400"] * 2
    assert len(fake.creates) == 1
    assert {(q["page_size"], q["order_by"], q["order_direction"]) for q in fake.lists} == {
        ("200", "created_at", "DESCENDING")}


def test_create_or_adopt_adopts_a_lost_create_and_counts_a_repeat_against_the_cap(
    fake, client, lecture
):
    said: list[str] = []
    fake.after_accept["de"] = ["502"]
    spend = Spend(limit=1.0, planned=1.0)
    adopted = create_or_adopt(client, lecture, target_lang="de", source_lang="auto", name="n1",
                              num_speakers=0, watermark=False, minutes=1.0, spend=spend,
                              say=said.append)
    assert adopted == fake.creates[0]["dubbing_id"] and len(fake.creates) == 1
    assert spend.minutes == 1.0  # found: nothing more may have been billed

    fake.flaky_languages["fr"] = [502]  # refused before acceptance: another create may bill
    with pytest.raises(DubbingError, match="over --max-dub-minutes 1"):
        create_or_adopt(client, lecture, target_lang="fr", source_lang="auto", name="n2",
                        num_speakers=0, watermark=False, minutes=1.0, spend=spend,
                        say=said.append)
    assert len(fake.creates) == 1

    fake.flaky_languages["fr"] = [502]
    roomy = Spend(limit=None)
    create_or_adopt(client, lecture, target_lang="fr", source_lang="auto", name="n3",
                    num_speakers=0, watermark=False, minutes=1.0, spend=roomy, say=said.append)
    assert [c["target_lang"] for c in fake.creates] == ["de", "fr"]
    assert roomy.minutes == 1.0  # the second create was counted


@pytest.mark.parametrize(("status", "final"), [("cancelled", True), ("on_hold", False)])
def test_a_status_neither_working_nor_dubbed_ends_the_wait_naming_it(fake, make_client, lecture,
                                                                     status, final):
    client = make_client(poll_timeout=60)
    fake.final_status["de"] = status
    dubbing_id = client.create(lecture, target_lang="de", name="L1")
    with pytest.raises(DubbingError, match=status) as raised:
        client.wait(dubbing_id, language="de")
    assert raised.value.final is final
    assert raised.value.state == status
    assert fake.count("GET", f"/v1/dubbing/{dubbing_id}") == STEPS


def test_no_free_slot_is_waited_for_on_the_clock_and_never_counted_as_an_attempt(
    fake, make_client, lecture
):
    clock = Clock()
    fake.clock = clock
    fake.retry_after = 5
    fake.no_slot_for["de"] = 45.0
    waits: list[float] = []
    client = make_client(clock=clock, sleep=clock.sleep, max_attempts=2, slot_timeout=600)
    client.create(lecture, target_lang="de", name="L1", on_wait=waits.append)
    assert len(fake.creates) == 1
    assert waits == [0, 5, 10, 15, 20, 25, 30, 35, 40]  # 9 refusals, far more than max_attempts

    fake.no_slot_for["fr"] = 1000.0
    short = make_client(clock=clock, sleep=clock.sleep, slot_timeout=30)
    with pytest.raises(DubbingError, match="no free ElevenLabs dubbing slot after 30s"):
        short.create(lecture, target_lang="fr", name="L2")
    assert len(fake.creates) == 1


# -- language codes ---------------------------------------------------------------------------


def test_the_language_table_is_the_contracts():
    assert list(DUBBING_LANGUAGES) == sorted(CONTRACT["languages"])


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(DUBBING_LANGUAGES)),
       st.sampled_from(["", "-BR", "-PT", "-Hans", "-Hant", "-KR", "-419", "-Latn", "-x-lecture"]))
def test_a_tag_is_sent_as_its_languages_elevenlabs_code(code, rest):
    assert elevenlabs_code(code + rest) == code


@pytest.mark.parametrize(("tag", "code"), [
    ("pt-BR", "pt"), ("zh-Hans", "zh"), ("ko-KR", "ko"), ("fil", "fil"), ("tl", "fil"),
    ("nb", "no"), ("nn", "no"), ("cmn", "zh"), ("auto", "auto"),
    ("th", None), ("he", None), ("yue", None), ("und", None), ("not a tag", None)])
def test_elevenlabs_codes_of_notable_tags(tag, code):
    assert elevenlabs_code(tag) == code
