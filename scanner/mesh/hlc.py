"""A hybrid logical clock (Kulkarni et al., 2014): physical milliseconds, a counter, a node.

Why: the gates' wall clocks disagree, and one may be an hour or a year off. History is
ordered by HLC stamp, never by ``scanned_at``. The rules:

- a local event (a scan stamped for the mesh) takes ``max(last, physical)``; if that is not
  ahead of the last stamp the counter goes up instead, so stamps never go backwards even
  when the wall clock does (NTP step, a dead RTC battery at boot);
- a received stamp is merged: the clock moves past it, so anything this gate does after
  hearing of a scan is ordered after that scan, whatever the two wall clocks say. A gate
  whose clock is an hour behind therefore still orders its check-out after the check-in it
  was told about, and a gate an hour ahead drags the others' stamps along (harmless: stamps
  only order; ``scanned_at`` stays the gate's corrected wall time);
- drift is bounded: a received stamp more than ``max_drift_ms`` ahead of our physical time
  is not merged beyond ``physical + max_drift_ms`` (counted in ``drift_clamped``). The
  record itself is still kept (dropping it could admit a ticket twice), it just cannot
  push the whole venue's clock into the far future. Only a stamp from such a broken gate
  can then be misordered, and the counter says which gate to fix.

Stamps are text that sorts in stamp order: ``<ms:013>-<counter:06>-<node>``. The two numbers
have fixed widths and the node comes last, so the node may be any printable gate name,
hyphens and spaces included (``north-1``): parsing splits at the first two hyphens only, and
two stamps differing only in their nodes still have one fixed order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from scanner.printable import is_number

# A peer an hour wrong must still order correctly; a day is plenty.
DEFAULT_MAX_DRIFT_MS = 24 * 3600 * 1000
_MS_DIGITS = 13
_COUNTER_DIGITS = 6
_MAX_COUNTER = 10**_COUNTER_DIGITS - 1


class Stamp(NamedTuple):
    ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.ms:0{_MS_DIGITS}d}-{self.counter:0{_COUNTER_DIGITS}d}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Stamp:
        """Raises ValueError for anything that is not a stamp."""
        ms, counter, node = text.split("-", 2)
        if len(ms) != _MS_DIGITS or len(counter) != _COUNTER_DIGITS or not node \
                or not is_number(ms) or not is_number(counter):
            raise ValueError(f"not an HLC stamp: {text[:40]!r}")
        return cls(int(ms), int(counter), node)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    """Thread-safe: the link stamps on its thread while messages merge on paho's."""

    def __init__(self, node: str, *, physical: Callable[[], int] = wall_ms,
                 max_drift_ms: int = DEFAULT_MAX_DRIFT_MS) -> None:
        if not node or not node.isprintable():
            raise ValueError(f"an HLC node name must be non-empty and printable: {node!r}")
        self.node = node
        self._physical = physical
        self.max_drift_ms = max_drift_ms
        self._ms = 0
        self._counter = 0
        self.drift_clamped = 0
        self._lock = threading.Lock()

    def now(self) -> Stamp:
        """A stamp for a local event, after every stamp made or merged before."""
        with self._lock:
            physical = self._physical()
            if physical > self._ms:
                self._ms, self._counter = physical, 0
            elif self._counter < _MAX_COUNTER:
                self._counter += 1
            else:  # a seventh digit would make a stamp no gate reads: the next millisecond
                self._ms, self._counter = self._ms + 1, 0
            return Stamp(self._ms, self._counter, self.node)

    def resume(self, own: Stamp) -> None:
        """Go on after a stamp this gate made before a restart, however far ahead of the
        wall clock it is: the drift bound is for peers' stamps, and a bounded one here
        would order the gate's next scans before its earlier ones."""
        with self._lock:
            if (own.ms, own.counter) > (self._ms, self._counter):
                self._ms, self._counter = own.ms, own.counter

    def merge(self, remote: Stamp) -> None:
        """Move past a stamp heard from a peer (or read back from our own database)."""
        with self._lock:
            physical = self._physical()
            ms, counter = remote.ms, remote.counter
            limit = physical + self.max_drift_ms
            if ms > limit:
                self.drift_clamped += 1
                ms, counter = limit, 0
            if (ms, counter) > (self._ms, self._counter):
                self._ms, self._counter = ms, counter
