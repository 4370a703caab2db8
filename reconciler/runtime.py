"""What an apply runs with: the seams (store, packager, inputs, dubber), the limits, the
clock and the sections' lease guards (engine.py wires them), and its local work folder."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .clock import Clock, SystemClock
from .dubbing import Dubber
from .errors import ReconcilerError
from .inputs import Inputs
from .packager import Packager
from .pay_once import Spend
from .progress import Tracker
from .recording import Recorder
from .store import Store


class WorkFolderError(ReconcilerError):
    """The local work folder (TMP_DIR) cannot be written: the disk is full, read-only or
    gone. The machine's state, not a bug."""


@contextmanager
def work_folder(path: Path) -> Iterator[None]:
    """Writes to the local work folder: an OSError becomes a WorkFolderError naming it."""
    try:
        yield
    except OSError as err:
        raise WorkFolderError(f"work folder {path}: {err.strerror or err}") from err


@dataclass
class Runtime:
    """The seams and limits an apply runs with: apply reaches the outside world only through
    the store, the packager, the inputs and the dubber given here (engine.py wires them)."""

    store: Store
    tmp_dir: Path
    packager: Packager
    inputs: Inputs
    workers: int = 8
    dub_concurrency: int = 2
    dubber: Callable[[], Dubber] | None = None  # created on first use: no key without dubs
    spend: Spend = field(default_factory=lambda: Spend(None))  # --max-dub-minutes, this run
    tracker: Tracker = field(default_factory=Tracker)
    # ffmpeg runs (measure, encode, copy) at once: one per core.
    cpu: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(os.cpu_count() or 1))
    # sectionId -> its lease's guard, called before each write (raises once the lease is unsure)
    guards: dict[int, Callable[[], None]] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)

    def recorder(self) -> Recorder:
        """What records an apply's sections in the state index (Recorder.record, once)."""
        return Recorder(self.store, self.clock, lambda message: self.tracker.say(None, message),
                        self.workers)
