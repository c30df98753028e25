"""The first full sync's progress: a bar for a person at a terminal, and the time left
the kiosk page shows."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


class _NoBar:
    total: int | None = None

    def update(self, n: int) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool | None, description: str) -> Any:
    """A tqdm bar on stderr if ``enabled`` (None: only if stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(desc=description, unit=" tickets", unit_scale=True, file=sys.stderr,
                leave=False, dynamic_ncols=True)


class Eta:
    """Seconds left of a first sync, from its average pace since this process first saw it
    (the sync may run in another process: only ``done`` of ``total`` is shared, through the
    store). None until it moved, or while the total is unknown."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._first: tuple[float, int] | None = None

    def __call__(self, done: int, total: int | None) -> float | None:
        now = self.clock()
        if self._first is None or done < self._first[1]:  # a new sync, or one begun again
            self._first = (now, done)
        at, start = self._first
        if total is None or done <= start or now <= at:
            return None
        return max(0.0, (total - done) * (now - at) / (done - start))
