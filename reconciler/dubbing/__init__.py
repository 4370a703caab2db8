"""The dubbing seam: what apply and engine ask of a dubbing service (the Dubber Protocol),
its errors and the statuses a dub goes through. ElevenLabs (elevenlabs.py) is the one
production implementation; tests point it at a contract-checking fake server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import ReconcilerError

__all__ = ["CreateUnknown", "Dubber", "DubbingError"]

# Statuses of a dub (the SDK's DubbingListRequestDubbingStatusesItem). Only WORKING ones are
# waited on; any other status than DUBBED ends the wait with an error naming it.
WORKING = ("queued", "preparing", "dubbing")
DUBBED = "dubbed"
FAILED = "failed"
CANCELLED = "cancelled"  # not in the SDK's enum, but a dub can be cancelled from the UI
OVER = (FAILED, CANCELLED)  # ElevenLabs will never finish it: the next apply dubs again

class DubbingError(ReconcilerError):
    """A dub that cannot be produced; `reason` is the API's own message (never the key).

    `status_code` is the HTTP status behind the failure when there was one (e.g. 401 means every
    language will fail, 400 usually only this one). `state` is the dub's last known status at
    ElevenLabs; only `final` errors (the dub `failed`, or its id is unknown: 404) mean the dub is
    over. Anything else (a poll timeout, the network) leaves it possibly still working, and paid.
    """

    def __init__(
        self,
        reason: str,
        *,
        language: str | None = None,
        dubbing_id: str | None = None,
        status_code: int | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.language = language
        self.dubbing_id = dubbing_id
        self.status_code = status_code
        self.state = state

    @property
    def final(self) -> bool:
        """ElevenLabs said the dub failed or was cancelled, or does not know its id: it will
        never finish."""
        return self.state in OVER or self.status_code == 404

    def __str__(self) -> str:
        context = [f"{k}={v}" for k, v in (("language", self.language),
                                            ("dubbing_id", self.dubbing_id)) if v]
        return f"{self.reason} ({', '.join(context)})" if context else self.reason


class CreateUnknown(DubbingError):
    """A create that may have reached ElevenLabs, with no answer to say so (a 5xx, a timeout,
    a dropped connection): it may be paid for. Look its name up (`find`) before another."""


class Dubber(Protocol):
    """What apply and engine ask of a dubbing service (ElevenLabs is the one production
    implementation; tests point it at a fake server). Every method works or raises
    DubbingError; `create` is the only billable call."""

    def create(self, audio: Path, *, target_lang: str, source_lang: str = "auto", name: str,
               num_speakers: int = 0, watermark: bool = False,
               on_wait: Callable[[float], None] | None = None) -> str:
        """Start dubbing `audio`; returns the dubbing_id. CreateUnknown when it may have been
        accepted without an answer; `on_wait` hears how long it has waited for a free slot."""

    def find(self, name: str) -> str | None:
        """The id of the newest dub called `name`, or None (a create whose answer was lost)."""

    def expected_seconds(self, dubbing_id: str) -> float | None:
        """How long the service said, when it accepted the dub, that it would take (None when
        this client did not create it: resumed, or found by name)."""

    def wait(self, dubbing_id: str, *, language: str | None = None,
             on_status: Callable[[str], None] | None = None) -> None:
        """Return once the dub is done; `on_status` hears each status polled."""

    def download(self, dubbing_id: str, language_code: str, dest: Path) -> Path:
        """Save the dubbed track next to `dest`; returns the path written."""

    def transcript(self, dubbing_id: str, language_code: str) -> bytes:
        """The dub's transcript in one language as WebVTT."""
