"""The clock guard: is the device clock believable, and what stamps the scans meanwhile?

A Pi has no battery clock: it boots at 1970, or at the time fake-hwclock saved at the last
shutdown, and jumps when NTP answers. The guard compares the device clock with what this
gate has seen already: the last sync (recorded on the device clock) and the newest journal
entry (stamped on the server-corrected clock). A clock before either is **behind**; one before
``UNSET_BEFORE`` was never set (**unset**). The gate keeps deciding either way (a visitor
must not wait for NTP); scans are stamped with the server offset measured from the ``Date``
headers (``scanner.journal.offset``) when one is known, and the state is shown in
``gate status``, the daemon's STATUS line and its log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scanner.clock import Clock
from scanner.tickets import parse_iso, utc_iso

log = logging.getLogger("scanner.clock")

# Before the first release of this software: a clock this early was never set.
UNSET_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
# Reference times are a few seconds apart from the device clock in normal running (sync
# runs, Date headers with one-second resolution, an NTP slew): not a regression.
TOLERANCE = timedelta(seconds=60)

OK, BEHIND, UNSET = "ok", "behind", "unset"


@dataclass(frozen=True, slots=True)
class ClockState:
    state: str                  # ok | behind | unset
    device_time: str            # the device clock, ISO UTC
    reference: str | None       # the latest time this gate has seen before now
    offset: float               # server minus device seconds used to stamp scans
    stamped: str                # what scanned_at is stamped with now, ISO UTC

    @property
    def corrected(self) -> bool:
        """A bad device clock that the server offset makes good."""
        return self.state != OK and self.offset != 0.0 and (
            self.reference is None or self.stamped >= self.reference)

    def line(self) -> str:
        if self.state == OK:
            return f"clock ok ({self.device_time}, server offset {self.offset:+.1f} s)"
        what = ("unset" if self.state == UNSET
                else f"behind the last known time {self.reference}")
        how = (f"scans stamped with the server offset {self.offset:+.0f} s"
               if self.corrected else "no server offset yet: scans carry the device time")
        return f"clock {what} (device {self.device_time}); {how}"

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "device_time": self.device_time,
                "reference": self.reference, "offset_s": round(self.offset, 3),
                "corrected": self.corrected, "stamped": self.stamped, "summary": self.line()}


def latest(times: Iterable[str | None]) -> str | None:
    known = [utc_iso(parse_iso(t)) for t in times if t]
    return max(known) if known else None


class ClockGuard:
    """``state()`` is cheap (no I/O): the references are read by ``refresh()``."""

    def __init__(self, clock: Clock, references: Callable[[], Iterable[str | None]],
                 offset: Callable[[], float]) -> None:
        self._clock = clock
        self._references = references
        self._offset = offset
        self._reference: str | None = None
        self._last_state: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the reference times again (after a sync)."""
        try:
            self._reference = latest([self._reference, *self._references()])
        except Exception as exc:  # the guard informs; it must never stop the gate
            log.warning("clock guard cannot read its reference times: %s", exc)

    def state(self) -> ClockState:
        now = self._clock()
        offset = self._offset()
        if now < UNSET_BEFORE:
            state = UNSET
        elif self._reference is not None and now + TOLERANCE < parse_iso(self._reference):
            state = BEHIND
        else:
            state = OK
        return ClockState(state, utc_iso(now), self._reference, offset,
                          utc_iso(now + timedelta(seconds=offset)))

    def check(self) -> ClockState:
        """``state()``, logged when it changes (first call: logged once)."""
        current = self.state()
        if current.state != self._last_state:
            level = logging.INFO if current.state == OK else logging.WARNING
            log.log(level, "%s", current.line())
            self._last_state = current.state
        return current
