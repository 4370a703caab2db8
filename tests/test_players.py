"""A published section played by three independent players in Chromium: hls.js (the copy the
package ships), Shaka Player and video.js (VHS), both from npm (package.json).

The section is media_helpers.flash_click_section: a flash and a click every second, B-frames
and AAC priming included, one language from the video's own track, one from a supplied .m4a,
one from a .mp3 (a dub's shape), each over a bed of its own pitch. tests/player_harness.js gives
the three players one interface and times what is seen (requestVideoFrameCallback's mediaTime
of each white frame) and heard (an AudioWorklet's click onsets, put on the media clock), so
for each player this checks the tracks master lists, that switching changes what is heard, the
lip sync of every language and the subtitle cue times.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from media_helpers import BEDS, CUES, flash_click_section, running
from playwright.sync_api import Browser, Page

from reconciler import layout
from reconciler.preview import HLSJS_FILE, make_server
from reconciler.store.local import LocalStore

SECTION = 31
ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_name("player_harness.js")
NPM = ROOT / "node_modules"
LIBRARIES = {
    "hlsjs": HLSJS_FILE,
    "shaka": NPM / "shaka-player" / "dist" / "shaka-player.compiled.js",
    "videojs": NPM / "video.js" / "dist" / "video.min.js",
}
NAMES = {"ko": "Korean", "en": "English", "ja": "Japanese"}
SYNC = 0.010  # the median |click - flash| of each language (lip sync needs well under 45 ms)
STRAY = 0.025  # no single click further off (the measurement's own jitter is a few ms)
PERIOD = 1.0  # a flash and a click every second (media_helpers.flash_click_section)
WINDOW = 1.5  # seconds played per look; a switch may take a look or two to be heard
PAGE = ('<!doctype html><video width="160" height="90" crossorigin="anonymous"></video>'
        '<script src="player.js"></script><script src="harness.js"></script>')


@pytest.fixture(scope="module")
def cdn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    missing = [str(path) for path in LIBRARIES.values() if not path.is_file()]
    if missing:
        pytest.fail(f"player libraries missing: {missing}; run `npm ci` (scripts/setup.sh --test)")
    published = flash_click_section(SECTION)
    with running(make_server(LocalStore(published))) as base:
        yield base


def open_player(browser: Browser, cdn: str, kind: str) -> Page:
    """A page on the CDN's origin (as a site embedding the player would be) running `kind`
    through the harness, with master loaded."""
    page = browser.new_page()
    files = {"page.html": PAGE.encode(), "player.js": LIBRARIES[kind].read_bytes(),
             "harness.js": HARNESS.read_bytes()}

    def serve(route, request) -> None:
        name = request.url.rsplit("/", 1)[1]
        route.fulfill(body=files[name],
                      content_type="text/html" if name.endswith(".html") else "text/javascript")

    page.route(f"{cdn}/_harness/*", serve)
    page.goto(f"{cdn}/_harness/page.html")
    page.evaluate("([kind, url]) => harness.open(kind, url).then(() => null)",
                  [kind, f"{cdn}/{layout.master_key(SECTION)}"])
    return page


def heard(page: Page, lang: str) -> tuple[list[float], list[float]]:
    """Play until two clicks over `lang`'s bed were heard with their flash seen (at most six
    looks): the offset of each from the nearest flash, and the beds of every click heard
    meanwhile. A click whose flash was not seen (a loaded machine skips frame callbacks) would
    be paired with its neighbour a whole period away: it is not a measurement, and is left out
    (the signal is periodic, so no offset of half a period or more can be measured anyway)."""
    offsets: list[float] = []
    beds: list[float] = []
    for _look in range(6):
        seen = page.evaluate(f"harness.sync({WINDOW})")
        for click in seen["clicks"]:
            beds.append(click["hz"])
            if abs(click["hz"] - BEDS[lang]) <= 0.1 * BEDS[lang] and seen["flashes"]:
                offset = min((click["at"] - f for f in seen["flashes"]), key=abs)
                if abs(offset) < PERIOD / 2:
                    offsets.append(offset)
        if len(offsets) >= 2:
            break
    return offsets, beds


@pytest.mark.parametrize("kind", LIBRARIES)
def test_every_language_plays_in_sync_and_cues_on_time(browser: Browser, cdn: str,
                                                       kind: str) -> None:
    page = open_player(browser, cdn, kind)
    try:
        assert page.evaluate("harness.player.audio()") == [
            {"lang": lang, "name": NAMES[lang]} for lang in BEDS]
        assert page.evaluate("harness.player.active()") == "ko"  # master's DEFAULT=YES
        assert page.evaluate("harness.player.subtitles()") == [{"lang": "ko", "name": "Korean"}]
        page.evaluate("harness.player.showSubtitles('ko')")
        # Checked before any audio switch: Shaka 5.2 sometimes empties its text track when the
        # audio track changes (about one run in six here; a player matter, not investigated).
        page.wait_for_function("harness.player.cues('ko').length > 0", timeout=5_000)
        cues = page.evaluate("harness.player.cues('ko')")
        # Each held cue (a player may keep only those near the playhead) where the file has it.
        for start, end, text in cues:
            number = int(text.split()[-1])
            assert (start, end) == pytest.approx(CUES[number - 1], abs=0.01), (kind, cues)

        for lang in ("ko", "en", "ja"):
            page.evaluate("(lang) => harness.player.select(lang)", lang)
            offsets, beds = heard(page, lang)
            where = f"{kind} {lang}: offsets {offsets}, beds heard {beds}"
            assert page.evaluate("harness.player.active()") == lang, where
            assert len(offsets) >= 2, where  # the switch is heard: clicks over lang's bed
            assert abs(statistics.median(offsets)) <= SYNC, where
            # A click the worklet reports during a stall of the loaded machine lands late; a real
            # desync moves every click (the median above), a glitch more than one in four.
            strays = [offset for offset in offsets if abs(offset) > STRAY]
            assert len(strays) <= len(offsets) // 4, where
    finally:
        page.close()
