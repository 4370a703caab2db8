"""The example player in a real Chromium, and ffprobe as a second real client.

Each language's audio is a pure tone (ko 440 Hz, en 880 Hz, ja 1320 Hz), so "the learner hears
the selected language" is measured: a WebAudio analyser on the <video> element reports the
dominant frequency. That only works because the page uses crossorigin="anonymous" and the
preview answers with CORS headers, as CloudFront must.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from media_helpers import make_section, running
from playwright.sync_api import Browser, Page

from reconciler import layout
from reconciler.preview import make_server
from reconciler.store.local import LocalStore

TONES = {"ko": 440, "en": 880, "ja": 1320}
NAMES = {"ko": "Korean", "en": "English", "ja": "Japanese"}
GOOD, BROKEN, SUBTITLED = 201, 202, 203
# Cue (start, end) per language; en's cues straddle the 4 s segment boundaries.
CUES = {"ko": [(1.0, 2.5), (5.0, 6.5), (9.0, 10.5), (13.0, 14.5)],
        "en": [(3.5, 4.8), (7.5, 8.8), (11.5, 12.8)]}

# Installed in the page after it starts playing: an analyser on the media element and a
# monitor that times each language switch from the click on its button.
PROBE_JS = """
() => {
  const {hls, video} = window.player;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaElementSource(video).connect(analyser);
  analyser.connect(ctx.destination);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const probe = {click: null, switched: null, waiting: 0};
  probe.tone = () => {
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return {hz: best * ctx.sampleRate / analyser.fftSize, db: bins[best]};
  };
  document.getElementById("languages").addEventListener("click", () => {
    Object.assign(probe, {click: performance.now(), switched: null, waiting: 0,
                          clickTime: video.currentTime});
  }, true);
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, () => { probe.switched = performance.now(); });
  video.addEventListener("waiting", () => { probe.waiting += 1; });
  // Resolves once the switch event came and the expected tone is audible, then keeps
  // watching playback for `watchMs` more; reports timings relative to the click.
  probe.after = (hz, timeoutMs, watchMs) => new Promise((resolve) => {
    const out = {audibleMs: null, switchedMs: null, tones: []};
    const tick = () => {
      const now = performance.now();
      const tone = probe.tone();
      if (out.tones.length < 40) out.tones.push(Math.round(tone.hz));
      if (probe.switched !== null) out.switchedMs = probe.switched - probe.click;
      if (out.audibleMs === null && tone.db > -50 && Math.abs(tone.hz - hz) <= hz * 0.1) {
        out.audibleMs = now - probe.click;
      }
      const done = out.audibleMs !== null && out.switchedMs !== null;
      if (done && now - probe.click >= out.audibleMs + watchMs || now - probe.click > timeoutMs) {
        Object.assign(out, {
          elapsedMs: now - probe.click,
          advanced: video.currentTime - probe.clickTime,
          waiting: probe.waiting,
          paused: video.paused,
          tone,
        });
        resolve(out);
      } else {
        setTimeout(tick, 20);
      }
    };
    tick();
  });
  window.probe = probe;
}
"""


@pytest.fixture(scope="module")
def cdn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = LocalStore(tmp_path_factory.mktemp("player") / "bucket")
    make_section(store, GOOD, TONES, seconds=20)
    make_section(store, BROKEN, TONES, seconds=20)  # GOOD's build, copied: no second encode
    make_section(store, SUBTITLED, TONES, seconds=20, texts={
        lang: "WEBVTT\n" + "".join(
            f"\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\n{lang} {i}\n"
            for i, (a, b) in enumerate(cues, 1))
        for lang, cues in CUES.items()})
    store.delete([layout.audio_dir(BROKEN, "en") + layout.INIT])
    with running(make_server(store)) as base:
        yield base


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def open_player(page: Page, cdn: str, section: int) -> None:
    page.goto(f"{cdn}/player.html?section={section}")
    page.wait_for_function("document.body.dataset.state === 'playing'", timeout=10_000)


def wait_pressed(page: Page, lang: str) -> None:
    """Wait for `lang`'s button to be marked: the player marks it when hls.js reports the track
    switched to, which may come just after playback starts."""
    page.wait_for_function(
        f"document.querySelector('button[data-lang={lang}]').getAttribute('aria-pressed')"
        " === 'true'", timeout=5_000)


def test_buttons_switch_the_audible_language_without_interrupting_video(
    page: Page, cdn: str
) -> None:
    open_player(page, cdn, GOOD)
    buttons = page.locator("#languages button")
    assert buttons.evaluate_all("bs => bs.map(b => [b.dataset.lang, b.textContent])") == [
        [lang, NAMES[lang]] for lang in TONES
    ]
    wait_pressed(page, "ko")
    assert page.get_attribute("#error", "hidden") is not None
    page.evaluate(PROBE_JS)

    # The default (ko) is what plays before any click.
    page.wait_for_function(
        "() => { const t = window.probe.tone(); return t.db > -50 && Math.abs(t.hz - 440) < 44 }",
        timeout=5_000,
    )

    for lang in ("en", "ja", "ko"):
        hz = TONES[lang]
        page.click(f"button[data-lang={lang}]")
        result = page.evaluate("([hz]) => window.probe.after(hz, 5000, 1000)", [hz])
        where = f"switch to {lang}: {result}"
        assert result["switchedMs"] is not None and result["switchedMs"] < 1000, where
        assert result["audibleMs"] is not None and result["audibleMs"] < 1500, where
        # Video kept playing through the switch: no stall, time advanced with the clock.
        assert result["waiting"] == 0 and not result["paused"], where
        assert result["advanced"] >= 0.8 * result["elapsedMs"] / 1000, where
        assert page.get_attribute(f"button[data-lang={lang}]", "aria-pressed") == "true"
        others = [o for o in TONES if o != lang]
        for other in others:
            assert page.get_attribute(f"button[data-lang={other}]", "aria-pressed") == "false"
        assert page.get_attribute("#active-lang", "data-lang") == lang
        assert NAMES[lang] in page.text_content("#active-lang")
    assert page.is_hidden("#error")


def test_tracks_listed_again_with_none_selected_keep_the_playing_language_pressed(
    page: Page, cdn: str
) -> None:
    """hls.js may list the audio tracks again while its audioTrack is -1 (between two
    selections): the buttons are made anew and the language playing stays marked."""
    open_player(page, cdn, GOOD)
    wait_pressed(page, "ko")
    page.evaluate("""() => {
      const hls = window.player.hls;
      Object.defineProperty(hls, "audioTrack", {get: () => -1, configurable: true});
      hls.trigger(Hls.Events.AUDIO_TRACKS_UPDATED, {audioTracks: hls.audioTracks});
    }""")
    pressed = page.locator("#languages button").evaluate_all(
        "bs => bs.map(b => [b.dataset.lang, b.getAttribute('aria-pressed')])")
    assert pressed == [[lang, str(lang == "ko").lower()] for lang in TONES]


def test_missing_init_segment_shows_an_error(page: Page, cdn: str) -> None:
    open_player(page, cdn, BROKEN)
    assert page.is_hidden("#error")
    page.click("button[data-lang=en]")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=5_000)
    text = error.text_content()
    assert "404" in text
    assert f"{layout.audio_dir(BROKEN, 'en')}{layout.INIT}" in text


def test_ffprobe_sees_video_and_every_language(cdn: str) -> None:
    url = f"{cdn}/{layout.master_key(GOOD)}"
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_programs", "-of", "json", url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    streams = json.loads(proc.stdout)["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert [(s["codec_name"], s["width"], s["height"]) for s in video] == [("h264", 320, 180)]
    # ffprobe's HLS demuxer tags each EXT-X-MEDIA rendition: LANGUAGE -> language, NAME ->
    # comment, and the variant's BANDWIDTH -> variant_bitrate.
    assert sorted((s["tags"]["language"], s["tags"]["comment"]) for s in audio) == sorted(
        NAMES.items()
    )
    assert {s["codec_name"] for s in audio} == {"aac"}
    assert all(int(s["tags"]["variant_bitrate"]) > 0 for s in streams)


# Records, every animation frame, when the text of each subtitle line changes (video time).
RECORD_JS = """
() => new Promise((resolve) => {
  const video = window.player.video;
  const seen = [[], []];
  const frame = () => {
    document.querySelectorAll("#captions [data-slot]").forEach((line, slot) => {
      const last = seen[slot][seen[slot].length - 1];
      if (!last || last.text !== line.textContent) {
        seen[slot].push({text: line.textContent, lang: line.dataset.lang, t: video.currentTime});
      }
    });
    if (video.currentTime < 15) requestAnimationFrame(frame); else resolve(seen);
  };
  frame();
})
"""


def test_dual_subtitles_show_each_cue_on_time_while_the_audio_is_switched(
    page: Page, cdn: str
) -> None:
    open_player(page, cdn, SUBTITLED)
    # hls.js lists the subtitle renditions from master; the menus offer off + each one.
    assert page.evaluate("window.player.hls.subtitleTracks.map(t => [t.lang, t.name])") == [
        ["ko", "Korean"], ["en", "English"]]
    for slot in (0, 1):
        assert page.locator(f"#subtitles-{slot} option").evaluate_all(
            "os => os.map(o => o.value)") == ["", "ko", "en"]
    page.select_option("#subtitles-0", "ko")
    page.select_option("#subtitles-1", "en")
    page.wait_for_function("window.player.subtitles.cues[1].length === 3", timeout=5_000)
    # hls.js also loads ko itself (hidden): its cue times are the reference for ours.
    page.evaluate("() => { window.player.hls.subtitleTrack = 0; window.player.video.currentTime"
                  " = 0; }")
    recording = page.evaluate_handle(RECORD_JS)
    for at, lang in ((6.0, "en"), (10.0, "ja")):
        page.wait_for_function(f"window.player.video.currentTime >= {at}", timeout=15_000)
        page.click(f"button[data-lang={lang}]")
        page.wait_for_function(  # the audio switched while the subtitles kept going
            f"document.getElementById('active-lang').dataset.lang === '{lang}'", timeout=3_000)
    seen = recording.json_value()

    for slot, lang in enumerate(("ko", "en")):
        shown = [(e["text"], e["t"]) for e in seen[slot] if e["lang"] == lang]
        on = [(text, t) for text, t in shown if text]
        off = [t for text, t in shown[1:] if not text]
        assert [text for text, _ in on] == [f"{lang} {i}" for i in range(1, len(CUES[lang]) + 1)]
        for (_text, t), (start, _end) in zip(on, CUES[lang], strict=True):
            assert abs(t - start) <= 0.5, (lang, seen[slot])
        for t, (_start, end) in zip(off, CUES[lang], strict=True):
            assert abs(t - end) <= 0.5, (lang, seen[slot])
    native = page.evaluate("""() => Array.from(window.player.video.textTracks)
        .filter(t => t.language === "ko" && t.cues)
        .flatMap(t => Array.from(t.cues, c => [c.startTime, c.endTime, c.text]))""")
    # (hls.js keeps only the cues near the playhead: at least the last one.)
    placed = {(round(a, 2), round(b, 2)) for a, b, _ in native}
    assert placed and placed <= set(CUES["ko"]), native

    # Remembered across reloads.
    open_player(page, cdn, SUBTITLED)
    page.wait_for_function("window.player.subtitles.chosen.length === 2", timeout=5_000)
    assert [page.input_value(f"#subtitles-{slot}") for slot in (0, 1)] == ["ko", "en"]
    page.select_option("#subtitles-1", "")
    open_player(page, cdn, SUBTITLED)
    page.wait_for_function("window.player.subtitles.tracks.length === 2", timeout=5_000)
    assert page.evaluate("window.player.subtitles.chosen") == ["ko"]
