"""Running a loop at a fixed rate."""
from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Sleeps at the end of each iteration so a loop runs at `rate_hz`. After a stall of more than one period the
    schedule restarts from now rather than racing through the missed iterations.

    sleep: how to wait (seconds); e.g. a threading.Event's `wait`, so that stopping interrupts it.
    """

    def __init__(self, rate_hz: float, sleep: Callable[[float], object] = time.sleep):
        self.period = 1.0 / rate_hz
        self._sleep = sleep
        self._next = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        self._next = max(self._next + self.period, now - self.period)
        self._sleep(max(0.0, self._next - now))
