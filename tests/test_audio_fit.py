"""Audio whose length does not fit the video: within ALIGN_TOLERANCE it is padded or trimmed
silently; beyond it the language fails naming both durations, unless its manifest entry opts
in with `fit: pad | trim | both`. End to end through `reconcile --apply` (local store and
moto with the fake ElevenLabs), on the corpus's lecture and dubs (tests/corpus.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import reconcile
from conftest import master_languages as s3_master_languages
from corpus import LECTURE_SECONDS

from reconciler.hls import parse_media
from reconciler.packager import MediaError, check_fit

PREFIX = "assets/curriculumsection"


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store"


def _section(repo, corpus, dub: str, **fit: str) -> None:
    """Section 11: the corpus lecture with its own track (ko) and `dub` as en."""
    media = repo.root / "media"
    corpus.copy_to("lecture", media)
    corpus.copy_to(dub, media)
    repo.write(11, [{"code": "ko", "audio": "source", "default": True},
                    {"code": "en", "audio": f"../media/{corpus.path(dub).name}", **fit}],
               video="../media/lecture.mp4")


def _apply(repo, store: Path):
    return reconcile("--apply", repo.manifests, "--store", f"file://{store}")


def _published(store: Path) -> tuple[list[str], list[str]]:
    """(LANGUAGEs master lists, keys under audio/en/) of section 11."""
    section = store / PREFIX / "11"
    master = section / "master.m3u8"
    languages = re.findall(r'LANGUAGE="([^"]+)"', master.read_text()) if master.exists() else []
    english = sorted(p.name for p in (section / "audio" / "en").glob("*"))
    return languages, english


@pytest.mark.parametrize("dub, words", [
    ("dub_short", ["audio is 2.0s but the video is 6.0s (4.0s shorter",
                   "set `fit: pad` on language en"]),
    ("dub_long", ["audio is 10.0s but the video is 6.0s (4.0s longer",
                  "set `fit: trim` on language en"]),
])
def test_audio_far_off_the_video_fails_that_language_naming_both_durations(
        repo, corpus, store, dub, words):
    _section(repo, corpus, dub)
    res = _apply(repo, store)
    assert res.code == 1, res.stdout
    line = next((x for x in res.stdout.splitlines() if all(w in x for w in words)), None)
    assert line is not None, res.stdout
    assert f"en: package audio: ../media/{dub}.mp3:" in line
    assert _published(store) == (["ko"], [])  # ko is published, nothing of en


@pytest.mark.parametrize("dub, fit, verb", [
    ("dub_short", "pad", "padded with silence"),
    ("dub_long", "trim", "trimmed at its end"),
    ("dub_short", "both", "padded with silence"),
    ("dub_long", "both", "trimmed at its end"),
])
def test_the_manifest_opts_a_language_into_padding_or_trimming(repo, corpus, store, dub, fit,
                                                               verb):
    _section(repo, corpus, dub, fit=fit)
    res = _apply(repo, store)
    assert res.code == 0, res.stdout
    assert re.search(rf"warning: en: audio is \d+\.\ds, video 6\.0s: {verb}", res.stdout), \
        res.stdout
    languages, english = _published(store)
    assert languages == ["ko", "en"] and "audio.m3u8" in english
    playlist = parse_media((store / PREFIX / "11" / "audio" / "en" / "audio.m3u8").read_text())
    assert playlist.duration == pytest.approx(LECTURE_SECONDS, abs=0.1)


def test_the_opt_in_is_one_way(repo, corpus, store):
    """`fit: trim` does not allow padding: short audio is still refused, pointing at `pad`."""
    _section(repo, corpus, "dub_short", fit="trim")
    res = _apply(repo, store)
    assert res.code == 1
    assert "set `fit: pad` on language en" in res.stdout
    assert _published(store) == (["ko"], [])


def test_a_small_mismatch_is_still_aligned_silently(repo, corpus, store):
    _section(repo, corpus, "dub_close")  # 0.5 s longer: within the 1 s tolerance
    res = _apply(repo, store)
    assert res.code == 0, res.stdout
    assert "warning" not in res.stdout
    assert _published(store)[0] == ["ko", "en"]


def test_an_unknown_fit_is_a_manifest_error(repo, corpus):
    _section(repo, corpus, "dub_close", fit="stretch")
    res = reconcile("validate", repo.manifests)
    assert res.code == 1
    assert re.search(r"section-11\.yaml:\d+: languages\[1\]\.fit: 'stretch' is not one of "
                     r"\['pad', 'trim', 'both'\]", res.stderr), res.stderr


def test_a_dub_longer_than_the_video_fails_and_the_opt_in_reuses_it_unpaid(
        repo, s3, bucket, eleven):
    """ElevenLabs returns a dub 3 s longer than the 5 s lecture (plausible enough to be cached,
    beyond the fit tolerance): refused after it was paid (its length is known only then), kept
    in the dub cache, and `fit: trim` publishes that
    cached dub without paying again."""
    eleven.tone_seconds = 8
    languages = [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}]
    repo.write(11, languages)
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert ("en: package audio: the ElevenLabs dub: audio is 8.0s but the video is 5.0s "
            "(3.0s longer") in res.stdout, res.stdout
    assert s3_master_languages(s3, bucket) == ["ko"]
    assert len(eleven.creates) == 1

    repo.write(11, [languages[0], {"code": "en", "fit": "trim"}])
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout
    assert len(eleven.creates) == 1  # the cached dub, not a new one
    assert s3_master_languages(s3, bucket) == ["ko", "en"]



@pytest.mark.parametrize("audio, video, may_pad, may_trim, refused", [
    (7.0, 8.0, False, False, None),  # the tolerance is inclusive
    (9.0, 8.0, False, False, None),
    (6.9, 8.0, False, True, "set `fit: pad`"),
    (9.1, 8.0, True, False, "set `fit: trim`"),
    (17.1, 8.0, True, True, "more than 2x): wrong file?"),  # even with the opt-in
])
def test_check_fit_bounds(audio, video, may_pad, may_trim, refused):
    def check() -> str | None:
        return check_fit(audio, video, may_pad=may_pad, may_trim=may_trim, label="en.mp3",
                         language="en")

    if refused is None:
        assert check() is None
    else:
        with pytest.raises(MediaError, match=re.escape(refused)):
            check()
