"""How a dub is paid once, under the run's cap, and what makes a downloaded dub worth keeping.

A create is the one billable call. Its answer can be lost (a gateway that accepted the upload
answers 502, the connection drops, the answer is slower than the read timeout), and the dub may
still have been accepted and billed. So before any further create for the same language the
dub's unique name is looked up at ElevenLabs (every page of GET /v1/dubbing) and a dub found is
adopted; only a dub nowhere listed is created again, and only while the minutes of every create
that may have been billed stay under --max-dub-minutes.

A downloaded dub is cached (dubbing-cache/) only after the packager decoded it, found it not
silent and about as long as the video; a broken download is fetched again from the same dub
(free: the dub is paid already), now or on the next apply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from .dubbing import CreateUnknown, Dubber, DubbingError
from .packager import Examined, MediaError, Packager

MAX_CREATES = 3  # creates of one dub in one apply, the first included (each looked up first)
HEARTBEAT = 30.0  # seconds between "still waiting for a slot" lines
# A dub this far from the video's length is not the dub of this video (an error page, a
# truncated or repeated file); ElevenLabs keeps the timing of the original.
MIN_LENGTH_RATIO, MAX_LENGTH_RATIO, LENGTH_SLACK = 0.5, 1.5, 1.0


class Spend:
    """Billable minutes this run may have paid for, against --max-dub-minutes (None: no cap).

    The plan's creates are counted from the start (the engine refused a plan over the cap);
    every further create after a lost answer is counted before it is sent."""

    def __init__(self, limit: float | None, planned: float = 0.0) -> None:
        self.limit = limit
        self.minutes = planned
        self._lock = threading.Lock()

    def charge(self, minutes: float) -> bool:
        """Count one more create of `minutes`; False (and nothing counted) over the cap."""
        with self._lock:
            if self.limit is not None and self.minutes + minutes > self.limit + 1e-9:
                return False
            self.minutes += minutes
            return True


def create_or_adopt(client: Dubber, audio: Path, *, target_lang: str, source_lang: str,
                    name: str, num_speakers: int, watermark: bool, minutes: float, spend: Spend,
                    say: Callable[[str], None],
                    on_wait: Callable[[float], None] | None = None) -> str:
    """The dubbing_id of the dub called `name`: created, or found after a lost answer.

    The first create is the plan's (already counted). After a CreateUnknown the name is looked
    up; only when ElevenLabs lists no such dub is another create sent, counted against the cap
    first. A create refused outright (4xx, no free slot) raises at once: nothing was paid.
    `on_wait` hears the seconds a create has waited for a free slot."""
    lost: CreateUnknown | None = None
    for attempt in range(MAX_CREATES):
        if attempt:
            found = client.find(name)
            if found:
                say(f"{target_lang}: the lost create was accepted: adopting dub {found}")
                return found
            if not spend.charge(minutes):
                raise DubbingError(
                    f"{lost}; ElevenLabs lists no dub {name!r} and another create would bill "
                    f"{minutes:.2f} more minutes, over --max-dub-minutes {spend.limit:g}; the "
                    "next apply looks the name up again", language=target_lang)
        try:
            return client.create(audio, target_lang=target_lang, source_lang=source_lang,
                                 name=name, num_speakers=num_speakers, watermark=watermark,
                                 on_wait=on_wait)
        except CreateUnknown as err:
            lost = err
            say(f"{target_lang}: {err.reason}; looking dub {name!r} up before paying again")
    found = client.find(name)
    if found:
        return found
    raise DubbingError(f"{MAX_CREATES} creates went unanswered ({lost}) and ElevenLabs lists "
                       f"no dub {name!r}; the next apply looks the name up again",
                       language=target_lang)


class SlotHeartbeat:
    """Says when a create starts waiting for a free ElevenLabs slot and every HEARTBEAT seconds
    of waiting after (a wait, not a failure)."""

    def __init__(self, language: str, say: Callable[[str], None]) -> None:
        self.language = language
        self.say = say
        self.last: float | None = None

    def __call__(self, waited: float) -> None:
        if self.last is None or waited - self.last >= HEARTBEAT:
            self.last = waited
            self.say(f"{self.language}: all ElevenLabs dubbing slots are busy; waiting for one "
                     f"({waited:.0f}s so far; nothing is paid while waiting)")


def verify_dub(packager: Packager, path: Path, video_duration: float | None) -> Examined:
    """The downloaded dub, examined: it decodes, is not silent and lasts about as long as the
    video. MediaError says what is wrong (nothing broken is ever cached)."""
    examined = packager.examine_audio(path)
    length = examined.info.duration
    if video_duration and not (MIN_LENGTH_RATIO * video_duration - LENGTH_SLACK <= length
                               <= MAX_LENGTH_RATIO * video_duration + LENGTH_SLACK):
        raise MediaError(f"it is {length:.1f}s long but the video is {video_duration:.1f}s")
    return examined
