"""The readers' live facts as the kiosk's probes: whether every device is connected, and
how many frames per second the camera readers decode.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

RATE_WINDOW = 5.0     # seconds of samples behind "frames decoded per second"
RATE_MIN_SPAN = 0.5   # a shorter span says nothing yet


class ReaderFacts(Protocol):
    """What a reader says of its device (``scanner.run.readers.ReaderWorker``)."""

    @property
    def connected(self) -> bool | None: ...
    @property
    def frames_decoded(self) -> int | None: ...


class Rate:
    """Per second of a growing count, over the samples of the last ``window`` seconds
    (each call is one sample). A count that went down (a restarted reader) starts over."""

    def __init__(self, count: Callable[[], int | None], *, window: float = RATE_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float | None:
        n = self.count()
        if n is None:
            return None
        now = self.clock()
        with self._lock:
            samples = self._samples
            if samples and n < samples[-1][1]:
                samples.clear()
            samples.append((now, n))
            while len(samples) > 2 and now - samples[1][0] >= self.window:
                samples.popleft()
            first_at, first = samples[0]
            if now - first_at >= RATE_MIN_SPAN:
                self._last = (n - first) / (now - first_at)
            return self._last


def readers_connected(readers: Sequence[ReaderFacts]) -> bool | None:
    """False while any reader's device is gone; None when none can tell."""
    states = [state for r in readers if (state := r.connected) is not None]
    return all(states) if states else None


def frames_decoded(readers: Sequence[ReaderFacts]) -> int | None:
    counts = [n for r in readers if (n := r.frames_decoded) is not None]
    return sum(counts) if counts else None
