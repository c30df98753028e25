"""The clock guard: which clock does the gate believe, the device's or the server's?

A Pi has no battery clock: it boots at 1970, or at the time fake-hwclock saved at the last
shutdown, and jumps when NTP answers. A server's ``Date`` header can be wrong too: a server
with a bad clock, a cache or captive portal replaying an old answer. Neither is believed
blindly (README, "Clocks"):

- The device clock is **believable** unless it is before this software's release
  (``UNSET_BEFORE``: it was never set, **unset**) or before what this gate has already seen
  (its newest journal stamp, the server time it last adopted: **behind**).
- A server's claim is **adopted** when the device clock is believable and the two are
  within the bound (``[run] clock_bound``); when the device clock is not believable, the
  claim **corrects** it if it is not before what the gate has seen. A claim that runs
  backwards against what the same server said before (``ServerSeen``, monotonic-corrected
  while the device clock was not set since) or that lies outside the bound of a believable
  device clock **disagrees**: it is never used, and the guard says so loudly.
- With no time it can trust (device clock not believable, no adopted server time) the gate
  is **untrusted**: time-dependent rules deny (``Reason.CLOCK_UNTRUSTED``) instead of
  admitting on a guess; every other check keeps working.

This module holds the rule (``judge``) and the report (``ClockState``); the journal's
``ServerOffset`` applies it to each measurement and keeps what it must remember.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scanner.clock import ClockStamp
from scanner.tickets import parse_iso, utc_iso

log = logging.getLogger("scanner.clock")

# Before the first release of this software: a clock this early was never set.
UNSET_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
# Reference times are a few seconds apart in normal running (Date headers with one-second
# resolution, a server's NTP correcting it, an NTP slew here): not a step back.
TOLERANCE = timedelta(seconds=60)

# The device clock.
OK, BEHIND, UNSET = "ok", "behind", "unset"
# The server's last claim: none under this device clock, adopted as agreeing with a
# believable device clock, adopted as correcting one that is not, or refused.
NO_ANSWER, AGREES, CORRECTS = "none", "agrees", "corrects"
OUT_OF_BOUND, BACKWARDS = "out_of_bound", "backwards"
ADOPTED = frozenset({AGREES, CORRECTS})
VERDICTS = ADOPTED | {OUT_OF_BOUND, BACKWARDS}


@dataclass(frozen=True, slots=True)
class ServerSeen:
    """The server time this gate last adopted, with the device time and clock stamp it was
    seen at: while the device clock runs unset since, the server's time now is at least
    ``server + (device now - device)``; after a step or a reboot, at least ``server``."""

    server: datetime
    device: datetime
    stamp: ClockStamp

    def expected(self, device_now: datetime, stamp: ClockStamp) -> datetime:
        """The earliest time an honest server can say now."""
        if stamp.agrees(self.stamp):
            return self.server + (device_now - self.device)
        return self.server

    def text(self) -> str:
        return f"{utc_iso(self.server)} {utc_iso(self.device)} {self.stamp.text()}"

    @classmethod
    def parse(cls, text: str | None) -> ServerSeen | None:
        server, _, rest = (text or "").partition(" ")
        device, _, stamp_text = rest.partition(" ")
        stamp = ClockStamp.parse(stamp_text)
        try:
            return None if stamp is None else cls(parse_iso(server), parse_iso(device), stamp)
        except ValueError:
            return None


def device_state(device_now: datetime, floor: datetime | None, bound: timedelta) -> str:
    """``ok`` | ``behind`` | ``unset``. ``floor``: the latest time this gate has seen; the
    bound is allowed below it, since stamps made with an adopted offset may lead the device
    clock by as much."""
    if device_now < UNSET_BEFORE:
        return UNSET
    return OK if device_now >= believable_from(floor, bound) else BEHIND


def believable_from(floor: datetime | None, bound: timedelta) -> datetime:
    """The earliest believable device time: one comparison per scan."""
    if floor is None:
        return UNSET_BEFORE
    return max(UNSET_BEFORE, floor - max(bound, TOLERANCE))


def judge(claim: datetime, device_now: datetime, *, believable: bool,
          floor: datetime | None, seen: ServerSeen | None, stamp: ClockStamp,
          bound: timedelta, live: bool = True) -> str:
    """What to make of a server saying it is ``claim`` when the device says ``device_now``:
    ``agrees`` or ``corrects`` (adopt it), ``out_of_bound`` or ``backwards`` (refuse it).
    ``live``: the claim is a server's answer now, not an offset saved from an earlier one
    (which, added to the device clock, is no second clock)."""
    if seen is not None and claim < seen.expected(device_now, stamp) - TOLERANCE:
        return BACKWARDS
    if believable:
        return AGREES if abs(claim - device_now) <= bound else OUT_OF_BOUND
    # Nothing to bound it by but what this gate has seen: an earlier claim is a replay...
    if floor is None or claim >= floor - TOLERANCE:
        return CORRECTS
    # ...unless a set device clock says the same: two clocks agreeing, both behind what the
    # gate has seen, mean a clock that ran ahead wrote it (a bad RTC, a wrong manual date,
    # then corrected). Refusing both would deny every timeslot until the real time caught
    # up with that mistake, years perhaps.
    if live and device_now >= UNSET_BEFORE and abs(claim - device_now) <= bound:
        return AGREES
    return BACKWARDS


@dataclass(frozen=True, slots=True)
class ClockState:
    state: str                  # the device clock: ok | behind | unset
    server: str                 # the server's last claim: none | agrees | corrects | refused
    device_time: str            # the device clock, ISO UTC
    reference: str | None       # the latest time this gate has seen before now
    offset: float               # server minus device seconds used to stamp scans
    claimed: float | None       # what the server's last answer said, adopted or not
    bound: float                # [run] clock_bound
    trusted: bool               # time-dependent rules may decide on the stamped time
    stamped: str                # what scanned_at is stamped with now, ISO UTC

    @property
    def corrected(self) -> bool:
        """A bad device clock that the server offset makes good."""
        return self.state != OK and self.trusted and self.offset != 0.0

    @property
    def disagrees(self) -> bool:
        return self.server not in ADOPTED and self.server != NO_ANSWER

    @property
    def fine(self) -> bool:
        """Nothing anyone needs to look at."""
        return self.state == OK and not self.disagrees

    def line(self) -> str:
        if self.fine:
            return f"clock ok ({self.device_time}, server offset {self.offset:+.1f} s)"
        parts = []
        if self.state != OK:
            parts.append("clock unset" if self.state == UNSET
                         else f"clock behind the last known time {self.reference}")
            parts[-1] += f" (device {self.device_time})"
            if self.state == BEHIND and self.server == AGREES:
                parts.append("the server's Date agrees with the device clock: a clock that "
                             "ran ahead wrote the later time")
        if self.disagrees:
            parts.append(self._disagreement())
        if not self.trusted:
            parts.append("no trusted time: timeslots are denied (CLOCK_UNTRUSTED), "
                         "scans carry the device time")
        elif self.state == OK:
            parts.append(f"deciding on the device clock (server offset {self.offset:+.1f} s "
                         f"kept)")
        elif self.corrected:
            parts.append(f"scans stamped with the server offset {self.offset:+.0f} s")
        else:
            parts.append("no server offset yet: scans carry the device time")
        return "; ".join(parts)

    def _disagreement(self) -> str:
        claimed = f"{self.claimed:+.0f} s" if self.claimed is not None else "?"
        why = (f"beyond the {self.bound:.0f} s bound" if self.server == OUT_OF_BOUND
               else "behind what this gate had already seen")
        return (f"CLOCK DISAGREES: the server's Date is {claimed} from the device "
                f"clock ({self.device_time}), {why}; not used")

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "server": self.server, "device_time": self.device_time,
                "reference": self.reference, "offset_s": round(self.offset, 3),
                "server_offset_s": None if self.claimed is None else round(self.claimed, 3),
                "bound_s": self.bound, "disagrees": self.disagrees, "trusted": self.trusted,
                "corrected": self.corrected, "stamped": self.stamped, "summary": self.line()}


class ClockGuard:
    """Reports the clock's state (``state()``: cheap, no I/O) and logs each change of it
    (``check()``): WARNING for a clock set wrong that the server corrects, ERROR when the
    clocks disagree or no time can be trusted."""

    def __init__(self, view: Callable[[], ClockState],
                 refresh: Callable[[], object] = lambda: None) -> None:
        self._view = view
        self._refresh = refresh
        self._last: tuple[str, str, bool] | None = None

    def refresh(self) -> None:
        """Read the reference times again (after a sync)."""
        try:
            self._refresh()
        except Exception as exc:  # the guard informs; it must never stop the gate
            log.warning("clock guard cannot read its reference times: %s", exc)

    def state(self) -> ClockState:
        return self._view()

    def check(self) -> ClockState:
        """``state()``, logged when it changes (first call: logged once)."""
        current = self.state()
        key = (current.state, current.server, current.trusted)
        if key != self._last:
            level = (logging.INFO if current.fine
                     else logging.ERROR if current.disagrees or not current.trusted
                     else logging.WARNING)
            log.log(level, "%s", current.line())
            self._last = key
        return current
