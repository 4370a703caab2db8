"""Progress of long work, visible wherever it runs (a terminal, a CI log, GitHub Actions).

An hour of dubbing must not look like a hung job. Apply reports what it does to a Tracker; the
base class only logs at debug level (the library's and the HTTP API's default). The CLI uses
Heartbeat, which writes to stderr:

* a heartbeat at least every `interval` seconds while work is in flight, whatever the terminal:
  `section 11: dubbing ja — 4m30s elapsed, status dubbing`,
  `section 11: uploaded 1,200/3,601 objects, 410 MiB`;
* step lines (`section 11: packaging video`) on an interactive terminal, and under GitHub
  Actions collected per section and printed, when the section is done, inside
  `::group::section 11` … `::endgroup::` (sections run concurrently, so live groups would
  interleave; the heartbeats stay outside the groups, live).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Tracker:
    """What an apply reports while it works. This base ignores it (debug log only)."""

    def say(self, section_id: int | None, message: str) -> None:
        log.debug("%s", _line(section_id, message))

    def dub_status(self, section_id: int, language: str, status: str) -> None:
        """A dub's current state (`creating`, then ElevenLabs' own statuses)."""

    def dub_done(self, section_id: int, language: str) -> None:
        """The dub is over (dubbed, failed, or given up on)."""

    def upload_queued(self, section_id: int) -> None:
        """One more object to upload."""

    def uploaded(self, section_id: int, size: int) -> None:
        """One object uploaded, `size` bytes."""

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


def mebibytes(size: int) -> str:
    mib = size / 2**20
    return f"{mib:,.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


@dataclass
class _Dub:
    started: float
    status: str


@dataclass
class _Uploads:
    queued: int = 0
    done: int = 0
    size: int = 0


class Heartbeat(Tracker):
    """Writes progress lines through `write` (stderr in the CLI); see the module docstring.
    `live`: an interactive terminal (step lines as they happen); `github`: GitHub Actions."""

    def __init__(self, write: Callable[[str], None], *, live: bool, github: bool,
                 interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.live = live
        self.github = github
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
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

    def dub_status(self, section_id: int, language: str, status: str) -> None:
        with self._lock:
            dub = self._dubs.setdefault((section_id, language), _Dub(self.clock(), status))
            dub.status = status
        self._start()

    def dub_done(self, section_id: int, language: str) -> None:
        with self._lock:
            self._dubs.pop((section_id, language), None)

    def upload_queued(self, section_id: int) -> None:
        with self._lock:
            self._uploads.setdefault(section_id, _Uploads()).queued += 1
        self._start()

    def uploaded(self, section_id: int, size: int) -> None:
        with self._lock:
            counts = self._uploads.setdefault(section_id, _Uploads())
            counts.done += 1
            counts.size += size

    def section_done(self, section_id: int) -> None:
        with self._lock:
            self._uploads.pop(section_id, None)
            lines = self._groups.pop(section_id, None)
        if lines:
            self._emit([f"::group::section {section_id}", *lines, "::endgroup::"])

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            left = sorted(self._groups)
        for section_id in left:
            self.section_done(section_id)

    # -- the heartbeat ---------------------------------------------------------------------
    def beat(self) -> list[str]:
        """One heartbeat: a line per dub in flight and per section uploading."""
        now = self.clock()
        with self._lock:
            lines = [f"section {sid}: dubbing {code} — {elapsed(now - d.started)} elapsed, "
                     f"status {d.status}" for (sid, code), d in sorted(self._dubs.items())]
            lines += [f"section {sid}: uploaded {u.done:,}/{u.queued:,} objects, "
                      f"{mebibytes(u.size)}" for sid, u in sorted(self._uploads.items())]
        return lines

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit(self.beat())

    def _emit(self, lines: list[str]) -> None:
        with self._lock:  # whole groups and beats, never interleaved line by line
            for line in lines:
                self.write(line)
