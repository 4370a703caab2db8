"""Progress of long work, visible wherever it runs (a terminal, a CI log, GitHub Actions).

An hour of dubbing must not look like a hung job. Apply reports facts to a Tracker - how many
units of a piece of work are done out of how many (seconds of media ffmpeg has written, bytes
sent, seconds a dub has run against ElevenLabs' expected duration) - and this module alone turns
them into figures (percent, time elapsed, time left) and text. The base Tracker only logs at
debug level (the library's and the HTTP API's default). The CLI uses Heartbeat, on stderr:

* on a terminal (`bar`), one line per piece of work in flight, redrawn in place and cleared
  when it is done (`section 11 packaging video 3.9/8.0 s [#########...........]  48%  ETA
  0m04s`); every other line written meanwhile (step lines, logs) goes above it;
* elsewhere, a heartbeat at least every `interval` seconds while work is in flight, with the
  same figures: `section 11: dubbing ja — 25%, 2m30s elapsed, ETA 7m30s, status dubbing`,
  `section 11: uploaded 1,200/3,601 objects, 410/1,024 MiB — 40%, 0m52s elapsed, ETA 1m17s`;
* step lines (`section 11: packaging video`) on an interactive terminal, and under GitHub
  Actions collected per section and printed, when the section is done, inside
  `::group::section 11` … `::endgroup::` (sections run concurrently, so live groups would
  interleave; the heartbeats stay outside the groups, live).

Time comes from the clock seam (clock.py), so a test states the figures without sleeping.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from .clock import Clock, SystemClock

log = logging.getLogger(__name__)


class Tracker:
    """What an apply reports while it works. This base ignores it (debug log only)."""

    def say(self, section_id: int | None, message: str) -> None:
        log.debug("%s", _line(section_id, message))

    def progress(self, section_id: int, task: str, done: float, total: float) -> None:
        """`task` (`packaging video`) has done `done` of `total` seconds of media."""

    def task_done(self, section_id: int, task: str) -> None:
        """`task` is over (finished or failed)."""

    def dub_status(self, section_id: int, language: str, status: str) -> None:
        """A dub's current state (`creating`, then ElevenLabs' own statuses)."""

    def dub_expected(self, section_id: int, language: str, seconds: float) -> None:
        """ElevenLabs accepted the dub and expects it to take `seconds` from now."""

    def dub_done(self, section_id: int, language: str) -> None:
        """The dub is over (dubbed, failed, or given up on)."""

    def upload_queued(self, section_id: int, size: int) -> None:
        """One more object of `size` bytes to upload."""

    def upload_sent(self, section_id: int, size: int) -> None:
        """`size` more bytes sent (negative when the store restarts a part)."""

    def uploaded(self, section_id: int) -> None:
        """One object uploaded."""

    def section_done(self, section_id: int) -> None:
        """Nothing more will be reported for this section."""

    def close(self) -> None:
        """The run is over."""


def _line(section_id: int | None, message: str) -> str:
    return message if section_id is None else f"section {section_id}: {message}"


def elapsed(seconds: float) -> str:
    """4m30s (1h05m00s past an hour)."""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
    return f"{s // 60}m{s % 60:02d}s"


def mebibytes(size: float) -> str:
    mib = size / 2**20
    return f"{mib:,.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


def percent(done: float, total: float | None) -> int | None:
    """Whole percent of `total` done (0-100), None when the total is unknown."""
    if not total or total <= 0:
        return None
    return max(0, min(100, int(100 * done / total)))


def eta(done: float, total: float | None, spent: float) -> float | None:
    """Seconds left at the pace so far (`done` units in `spent` seconds); None before any pace
    is known or without a total."""
    if not total or done <= 0 or spent <= 0:
        return None
    return max(0.0, (total - done) * spent / done)


@dataclass
class Figures:
    """One piece of work in flight, as a person reads it: what, how far, how long left."""

    what: str  # `section 11: packaging video`
    amount: str  # `3.4/8.0 s`, `12/36 objects, 4.1/9.0 MiB`, or ""
    percent: int | None
    spent: float
    left: float | None
    status: str | None = None

    def heartbeat(self) -> str:
        """The heartbeat line: `section 11: packaging video 3.4/8.0 s — 42%, 0m03s elapsed,
        ETA 0m05s` (figures that are unknown are left out)."""
        parts = [f"{self.percent}%"] if self.percent is not None else []
        parts.append(f"{elapsed(self.spent)} elapsed")
        if self.left is not None:
            parts.append(f"ETA {elapsed(self.left)}")
        if self.status:
            parts.append(f"status {self.status}")
        head = f"{self.what} {self.amount}" if self.amount else self.what
        return f"{head} — {', '.join(parts)}"

    def bar(self, width: int) -> str:
        """The terminal line, at most `width` characters: `section 11 packaging video
        3.9/8.0 s [#########...........]  48%  ETA 0m04s`."""
        filled = BAR_CELLS * (self.percent or 0) // 100
        cells = f"[{'#' * filled}{'.' * (BAR_CELLS - filled)}]"
        tail = f"{self.percent:3d}%" if self.percent is not None else f"{elapsed(self.spent)}"
        if self.left is not None:
            tail += f"  ETA {elapsed(self.left)}"
        if self.status:
            tail += f"  {self.status}"
        head = self.what.replace(":", "", 1) + (f" {self.amount}" if self.amount else "")
        return f"{head} {cells} {tail}"[:width]


BAR_CELLS = 20


@dataclass
class _Task:
    """Media seconds done of a total (an encode or a copy), since `started`."""

    started: float
    done: float = 0.0
    total: float = 0.0


@dataclass
class _Dub:
    started: float
    status: str
    expected: float | None = None  # seconds, from `started` (reset when ElevenLabs accepts)


@dataclass
class _Uploads:
    started: float
    queued: int = 0
    done: int = 0
    size: int = 0  # bytes queued
    sent: int = 0  # bytes sent


class LiveLines:
    """The last lines of a terminal, redrawn in place. Whatever else is written through it (a
    step line, a log record: it is the logging handler's stream meanwhile) is put above them,
    so progress and logs never overwrite each other."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._drawn = 0
        self._lock = threading.RLock()

    def show(self, lines: list[str]) -> None:
        """Replace the lines drawn by `lines` (none: cleared)."""
        with self._lock:
            self._erase()
            self.lines = lines
            self._draw()
            self.stream.flush()

    def write(self, text: str) -> int:
        """Text for above the lines: they are redrawn below it once it ends a line."""
        with self._lock:
            self._erase()
            self.stream.write(text)
            if text.endswith("\n"):
                self._draw()
            return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def _erase(self) -> None:
        if self._drawn:  # to the start of the first line drawn, then clear to the end
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        for line in self.lines:
            self.stream.write(line + "\n")
        self._drawn = len(self.lines)


class Heartbeat(Tracker):
    """Writes progress through `write` (a line at a time; stderr in the CLI); see the module
    docstring. `live`: an interactive terminal (step lines as they happen); `github`: GitHub
    Actions; `bar`: a terminal to redraw progress lines on every `redraw_every` seconds, instead
    of heartbeat lines."""

    def __init__(self, write: Callable[[str], None], *, live: bool, github: bool,
                 interval: float = 30.0, clock: Clock | None = None,
                 bar: LiveLines | None = None, redraw_every: float = 0.2,
                 width: Callable[[], int] = lambda: shutil.get_terminal_size().columns) -> None:
        self.write = write
        self.live = live
        self.github = github
        # Seconds between heartbeats, or between redraws of the bar (its elapsed times and
        # a dub's share move on between reports).
        self.interval = redraw_every if bar is not None else interval
        self.clock = clock or SystemClock()
        self.bar = bar
        self.width = width
        self._lock = threading.Lock()
        self._tasks: dict[tuple[int, str], _Task] = {}
        self._dubs: dict[tuple[int, str], _Dub] = {}
        self._uploads: dict[int, _Uploads] = {}
        self._groups: dict[int, list[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what apply reports ----------------------------------------------------------------
    def say(self, section_id: int | None, message: str) -> None:
        line = _line(section_id, message)
        if self.github and section_id is not None:
            with self._lock:
                self._groups.setdefault(section_id, []).append(line)
        elif self.live or self.github:
            self._emit([f"… {line}"])

    def progress(self, section_id: int, task: str, done: float, total: float) -> None:
        with self._lock:
            work = self._tasks.setdefault((section_id, task), _Task(self.clock.monotonic()))
            work.done, work.total = done, total
        self._changed()

    def task_done(self, section_id: int, task: str) -> None:
        with self._lock:
            self._tasks.pop((section_id, task), None)
        self._changed()

    def dub_status(self, section_id: int, language: str, status: str) -> None:
        with self._lock:
            dub = self._dubs.setdefault((section_id, language),
                                        _Dub(self.clock.monotonic(), status))
            dub.status = status
        self._changed()

    def dub_expected(self, section_id: int, language: str, seconds: float) -> None:
        with self._lock:
            dub = self._dubs.setdefault((section_id, language),
                                        _Dub(self.clock.monotonic(), "queued"))
            dub.started, dub.expected = self.clock.monotonic(), seconds
        self._changed()

    def dub_done(self, section_id: int, language: str) -> None:
        with self._lock:
            self._dubs.pop((section_id, language), None)
        self._changed()

    def upload_queued(self, section_id: int, size: int) -> None:
        with self._lock:
            counts = self._uploads.setdefault(section_id, _Uploads(self.clock.monotonic()))
            counts.queued += 1
            counts.size += size
        self._changed()

    def upload_sent(self, section_id: int, size: int) -> None:
        with self._lock:
            self._uploads.setdefault(section_id, _Uploads(self.clock.monotonic())).sent += size

    def uploaded(self, section_id: int) -> None:
        with self._lock:
            self._uploads.setdefault(section_id, _Uploads(self.clock.monotonic())).done += 1
        self._changed()

    def section_done(self, section_id: int) -> None:
        with self._lock:
            self._uploads.pop(section_id, None)
            lines = self._groups.pop(section_id, None)
        if lines:
            self._emit([f"::group::section {section_id}", *lines, "::endgroup::"])
        self._changed()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            left = sorted(self._groups)
        for section_id in left:
            self.section_done(section_id)
        if self.bar is not None:
            self.bar.show([])

    # -- the figures -----------------------------------------------------------------------
    def figures(self) -> list[Figures]:
        """Every piece of work in flight: encodes and copies, dubs, each section's uploads."""
        now = self.clock.monotonic()
        with self._lock:
            found = [Figures(f"section {sid}: {task}", f"{t.done:.1f}/{t.total:.1f} s",
                             percent(t.done, t.total), now - t.started,
                             eta(t.done, t.total, now - t.started))
                     for (sid, task), t in sorted(self._tasks.items())]
            found += [_dub_figures(sid, code, d, now)
                      for (sid, code), d in sorted(self._dubs.items())]
            found += [Figures(f"section {sid}: uploaded",
                              f"{u.done:,}/{u.queued:,} objects, "
                              f"{mebibytes(u.sent).split()[0]}/{mebibytes(u.size)}",
                              percent(u.sent, u.size), now - u.started,
                              eta(u.sent, u.size, now - u.started) if u.done < u.queued else None)
                      for sid, u in sorted(self._uploads.items())]
        return found

    def beat(self) -> list[str]:
        """One heartbeat: a line per piece of work in flight."""
        return [figures.heartbeat() for figures in self.figures()]

    # -- the heartbeat and the bar ---------------------------------------------------------
    def _changed(self) -> None:
        """Something was reported: make sure heartbeats run; on a terminal, redraw at once
        when a piece of work began or ended (its figures move on at the next redraw)."""
        if self.bar is not None:
            with self._lock:
                count = len(self._tasks) + len(self._dubs) + len(self._uploads)
            if count != len(self.bar.lines):
                self.redraw()
        self._start()

    def redraw(self) -> None:
        """Draw the bar with the figures of now (the timer does, every `redraw_every` s)."""
        if self.bar is not None and not self._stop.is_set():
            width = max(20, self.width() - 1)  # a full-width line would wrap on some terminals
            self.bar.show([figures.bar(width) for figures in self.figures()])

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.bar is not None:
                self.redraw()
            else:
                self._emit(self.beat())

    def _emit(self, lines: list[str]) -> None:
        with self._lock:  # whole groups and beats, never interleaved line by line
            for line in lines:
                self.write(line)


def _dub_figures(section_id: int, language: str, dub: _Dub, now: float) -> Figures:
    """A dub's figures: time run against ElevenLabs' expected duration, never 100% before it
    is dubbed (an expected duration is a guess) and no ETA once it is overdue."""
    spent = now - dub.started
    share = percent(spent, dub.expected)
    left = eta(spent, dub.expected, spent)
    return Figures(f"section {section_id}: dubbing {language}", "",
                   None if share is None else min(share, 99), spent,
                   left if left else None, dub.status)
