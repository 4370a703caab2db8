"""Progress a person can read: the figures (percent, ETA) on a clock the test drives, the bar
redrawn in place on a terminal, and the facts the seams report - ffmpeg's -progress of a real
encode, the bytes of a multipart upload to S3 (moto)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import reconcile
from conftest import KO_EN
from manual_clock import ManualClock
from test_cli_terminal import on_terminal

from reconciler import samples
from reconciler.dubbing.elevenlabs import ElevenLabs
from reconciler.layout import ObjectMeta
from reconciler.packager.ffmpeg import encode_audio, examine_audio, follow_progress, package_video
from reconciler.progress import Heartbeat, LiveLines, eta, percent
from reconciler.store.s3 import DEFAULT_MULTIPART_THRESHOLD, S3Store

MiB = 2**20


def heartbeat(clock: ManualClock, bar: LiveLines | None = None) -> Heartbeat:
    """A Heartbeat whose lines the test reads (its timer never fires: every hour)."""
    return Heartbeat(lambda line: None, live=False, github=False, interval=3600, clock=clock,
                     bar=bar, redraw_every=3600, width=lambda: 80)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def beat(clock: ManualClock) -> Iterator[Heartbeat]:
    """A heartbeat on the test's clock, closed when the test ends."""
    beat = heartbeat(clock)
    yield beat
    beat.close()


def test_percent_and_eta_follow_the_pace_so_far() -> None:
    assert percent(3, 8) == 37 and percent(8, 8) == 100 and percent(9, 8) == 100
    assert percent(1, None) is None and percent(1, 0) is None
    assert eta(2, 8, 4.0) == 12.0  # 2 units in 4 s: 6 more take 12 s
    assert eta(8, 8, 4.0) == 0.0
    assert eta(0, 8, 4.0) is None and eta(2, None, 4.0) is None and eta(2, 8, 0.0) is None


def test_an_encode_reports_percent_and_eta_on_the_tests_clock(
        clock: ManualClock, beat: Heartbeat) -> None:
    beat.progress(11, "packaging audio ja", 0.0, 120.0)  # ffmpeg started
    clock.advance(10)
    beat.progress(11, "packaging audio ja", 30.0, 120.0)
    assert beat.beat() == [
        "section 11: packaging audio ja 30.0/120.0 s — 25%, 0m10s elapsed, ETA 0m30s"]
    clock.advance(20)
    beat.progress(11, "packaging audio ja", 120.0, 120.0)
    assert beat.beat() == [
        "section 11: packaging audio ja 120.0/120.0 s — 100%, 0m30s elapsed, ETA 0m00s"]
    beat.task_done(11, "packaging audio ja")
    assert beat.beat() == []


def test_a_dub_counts_against_elevenlabs_expected_duration_and_never_claims_done(
        clock: ManualClock, beat: Heartbeat) -> None:
    beat.dub_status(11, "ja", "creating")
    clock.advance(40)  # the upload to ElevenLabs: not part of its expected duration
    assert beat.beat() == ["section 11: dubbing ja — 0m40s elapsed, status creating"]
    beat.dub_expected(11, "ja", 600.0)
    beat.dub_status(11, "ja", "dubbing")
    clock.advance(150)
    assert beat.beat() == [
        "section 11: dubbing ja — 25%, 2m30s elapsed, ETA 7m30s, status dubbing"]
    clock.advance(500)  # overdue: no ETA, and not 100% before ElevenLabs says dubbed
    assert beat.beat() == ["section 11: dubbing ja — 99%, 10m50s elapsed, status dubbing"]
    beat.dub_done(11, "ja")
    assert beat.beat() == []


def test_uploads_count_bytes_sent_against_bytes_queued(
        clock: ManualClock, beat: Heartbeat) -> None:
    beat.upload_queued(12, 3 * MiB)
    beat.upload_queued(12, 3 * MiB)
    clock.advance(3)
    beat.upload_sent(12, MiB)
    beat.upload_sent(12, MiB // 2)
    assert beat.beat() == [
        "section 12: uploaded 0/2 objects, 1.5/6.0 MiB — 25%, 0m03s elapsed, ETA 0m09s"]
    beat.upload_sent(12, 3 * MiB // 2)
    beat.uploaded(12)
    beat.upload_sent(12, 3 * MiB)
    beat.uploaded(12)
    assert beat.beat() == ["section 12: uploaded 2/2 objects, 6.0/6.0 MiB — 100%, "
                           "0m03s elapsed"]
    beat.section_done(12)
    assert beat.beat() == []


def test_the_bar_is_redrawn_in_place_with_log_lines_above_it_and_cleared_at_the_end(
        clock: ManualClock) -> None:
    screen = io.StringIO()
    lines = LiveLines(screen)
    beat = heartbeat(clock, lines)
    beat.progress(11, "packaging video", 0.0, 8.0)
    clock.advance(1)
    beat.progress(11, "packaging video", 4.0, 8.0)
    beat.redraw()  # what the timer does every `redraw_every` seconds
    half = "section 11 packaging video 4.0/8.0 s [##########..........]  50%  ETA 0m01s"
    assert lines.lines == [half]
    lines.write("a log line\n")  # the logging handler's stream while the bar is shown
    beat.task_done(11, "packaging video")
    beat.close()
    shown = screen.getvalue()
    erase = "\x1b[1F\x1b[J"
    # drawn at 0 %, redrawn at 50 %, moved below the log line, cleared when the work ended
    assert shown == (
        "section 11 packaging video 0.0/8.0 s [....................]   0%\n"
        f"{erase}{half}\n"
        f"{erase}a log line\n"
        f"{half}\n"
        f"{erase}")
    assert lines.lines == []


def test_bar_lines_fit_the_terminal_width(clock: ManualClock) -> None:
    lines = LiveLines(io.StringIO())
    beat = Heartbeat(lambda line: None, live=False, github=False, clock=clock, bar=lines,
                     redraw_every=3600, width=lambda: 30)
    beat.dub_status(7, "zh-Hans", "dubbing")
    assert [len(line) for line in lines.lines] == [29]
    beat.close()


def test_ffmpeg_progress_blocks_are_clamped_never_go_back_and_end_at_the_total() -> None:
    """What ffmpeg 5.1 writes: N/A before the first packet, below zero while an AAC encoder
    primes, times past the total (the last frame's end), then `progress=end`."""
    blocks = ["out_time_us=N/A", "progress=continue", "out_time_us=-21333", "progress=continue",
              "out_time_us=4000000", "progress=continue", "out_time_us=3999000",
              "progress=continue", "out_time_us=8021333", "progress=continue",
              "out_time_us=8021333", "progress=end"]
    reports: list[tuple[float, float]] = []
    follow_progress((line + "\n" for line in blocks), 8.0,
                    lambda done, total: reports.append((done, total)))
    assert reports == [(0.0, 8.0), (0.0, 8.0), (0.0, 8.0), (4.0, 8.0), (4.0, 8.0), (8.0, 8.0),
                       (8.0, 8.0)]


def test_a_real_encode_reports_rising_progress_ending_at_its_duration(tmp_path: Path) -> None:
    """ffmpeg's -progress of a minute of audio (AAC at the target loudness, on a 4 s grid)."""
    tone = samples.make_tone(tmp_path / "tone.mp3", hz=440, seconds=60)
    examined = examine_audio(tone)
    reports: list[tuple[float, float]] = []
    encode_audio(examined, tmp_path / "out", segments=[4.0] * 15,
                       on_progress=lambda done, total: reports.append((done, total)))
    done = [d for d, _total in reports]
    assert {total for _done, total in reports} == {60.0}
    assert done[0] == 0.0 and done[-1] == 60.0, reports
    assert done == sorted(done), reports
    assert any(0 < d < 60 for d in done), reports  # seen on the way, not only at the end


def test_a_video_copy_reports_progress_up_to_the_inputs_duration(media: Path,
                                                                tmp_path: Path) -> None:
    reports: list[tuple[float, float]] = []
    info = package_video(media / "lecture.mp4", tmp_path / "video",
                               on_progress=lambda done, total: reports.append((done, total)))
    assert reports[0] == (0.0, info.duration) and reports[-1] == (info.duration, info.duration)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)


def test_a_multipart_upload_reports_bytes_up_to_its_size(bucket: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(DEFAULT_MULTIPART_THRESHOLD + 3 * MiB))  # two parts
    store = S3Store(bucket)
    sent: list[int] = []
    etag = store.put_file("dubbing-cache/11/big.bin", big,
                          ObjectMeta("application/octet-stream", "no-store"),
                          on_bytes=sent.append)
    assert re.fullmatch(r"[0-9a-f]{32}-2", etag), etag  # S3's ETag of a two-part upload
    assert len(sent) > 1 and sum(sent) == big.stat().st_size
    running = [sum(sent[:k + 1]) for k in range(len(sent))]
    assert running == sorted(running)


def test_a_small_upload_reports_its_size_once(bucket: str, tmp_path: Path) -> None:
    small = tmp_path / "seg.m4s"
    small.write_bytes(b"x" * 1000)
    sent: list[int] = []
    S3Store(bucket).put_file("seg.m4s", small, ObjectMeta("video/iso.segment", "max-age=1"),
                             on_bytes=sent.append)
    assert sent == [1000]


def test_heartbeats_without_a_terminal_carry_percent_and_eta(repo, eleven, tmp_path,
                                                              monkeypatch) -> None:
    """CLI, local store, stderr not a terminal: heartbeat lines (no bar) with the dub's share of
    ElevenLabs' expected duration and its ETA, and the uploads' bytes."""
    monkeypatch.setenv("RECONCILER_HEARTBEAT_SECONDS", "0.1")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    eleven.steps_by_lang["en"] = 40  # about 2 s of polling at 0.05 s; expected: 4 s
    repo.write(11, [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}])
    res = reconcile("--apply", repo.manifests, "--store", f"file://{tmp_path / 'store'}")
    assert res.code == 0, res.stdout + res.stderr
    dub = re.findall(r"^section 11: dubbing en — (\d+)%, \d+m\d\ds elapsed, ETA \d+m\d\ds, "
                     r"status \w+$", res.stderr, re.M)
    assert dub, res.stderr
    assert [int(p) for p in dub] == sorted(int(p) for p in dub)
    assert re.search(r"^section 11: uploaded \d+/\d+ objects, [\d.]+/[\d.]+ MiB — \d+%, "
                     r"\d+m\d\ds elapsed", res.stderr, re.M), res.stderr
    assert "\x1b[" not in res.stderr and "[#" not in res.stderr, res.stderr  # no bar here


def final_screen(shown: str) -> list[str]:
    """What a terminal shows after `shown`, for the sequences the CLI writes: lines, colour,
    cursor to the start of a line N up (ESC [ N F) and clear to the end (ESC [ J)."""
    rows, row = [""], 0
    for token in re.split(r"(\x1b\[[0-9;]*[A-Za-z]|\n)", shown.replace("\r\n", "\n")):
        if token == "\n":
            row += 1
            rows += [""] * (row + 1 - len(rows))
        elif up := re.fullmatch(r"\x1b\[(\d*)F", token):
            row = max(0, row - int(up[1] or 1))
        elif token == "\x1b[J":
            del rows[row:]
            rows.append("")
        elif not token.startswith("\x1b["):
            rows[row] += token
    return [line for line in rows if line]


def test_on_a_terminal_a_bar_is_drawn_for_each_task_and_cleared(repo, tmp_path) -> None:
    """A real pty: bar lines (packaging, uploads) drawn while the apply runs, none left on
    the screen after it, nor under the -v log lines written meanwhile (they go above the bar);
    the outcome is shown as without a bar."""
    repo.write(11, KO_EN)
    # A person's terminal, also when the suite runs in CI (CI set: no step lines, see Heartbeat).
    code, shown = on_terminal(["-v", "--apply", str(repo.manifests), "--auto-approve",
                               "--store", f"file://{tmp_path / 'store'}"], NO_COLOR="1", CI="")
    assert code == 0, shown
    assert re.search(r"section 11 packaging video [\d.]+/5\.0 s \[[#.]{20}\] +\d+%",
                     shown), shown
    assert re.search(r"section 11 uploaded \S+ objects, \S+ MiB \[[#.]{20}\]", shown), shown
    screen = final_screen(shown)
    assert not [line for line in screen if re.search(r"\[[#.]{20}\]", line)], screen
    assert any(re.search(r"INFO reconciler\.command: run: ffmpeg .*-progress pipe:1", line)
               for line in screen), screen
    # step lines written above the bar stay; the outcome comes after the bar is gone
    assert any(line.startswith("… section 11: done: ") for line in screen), screen
    assert screen[-1].startswith("Apply complete: 1 section(s) converged"), screen


def test_the_dub_client_keeps_the_expected_duration_elevenlabs_answered(eleven, media) -> None:
    """POST /v1/dubbing answers expected_duration_sec (the SDK's DoDubbingResponse): the client
    keeps it for the dubs it created, and knows none for a dub it did not (a resumed one)."""
    with ElevenLabs.from_env() as client:
        dubbing_id = client.create(media / "en.mp3", target_lang="ja", name="progress-test")
        expected = client.expected_seconds(dubbing_id)
        assert expected is not None and expected > 0
        assert expected == round(max(1.0, eleven.creates[0]["duration"] * 0.5), 1)
        assert client.expected_seconds("dub-made-by-another-run") is None
