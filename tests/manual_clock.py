"""A clock the test drives (the reconciler.clock.Clock seam): nothing sleeps; every wait asked
for is kept, and time moves only when a wait or the test moves it."""

from __future__ import annotations


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
