"""Time sources. Logic takes ``now`` as an argument; only the composition root reads clocks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import time as time_of_day
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], datetime]

# A step of the wall clock smaller than this is not a jump: offsets come from Date headers
# with one-second resolution, so they are no more exact than that anyway.
JUMP_TOLERANCE = 2.0
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_zone() -> tzinfo:
    """The machine's time zone, DST-aware, for clock times shown to people (TZ, then
    /etc/localtime, else UTC). Journaled times stay UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return UTC


def last_moment(now: datetime, at: time_of_day, zone: tzinfo) -> datetime:
    """The latest ``at`` (local time in ``zone``) at or before ``now``. Compared as
    instants: two times of one zone compare by their wall clocks, which on a night the
    clocks change put a moment still ahead behind us (``at`` in the hour skipped, taken
    at the offset before it) or forgot one already past (the hour repeated)."""
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), at, tzinfo=zone)
    if today.timestamp() <= now.timestamp():
        return today
    return datetime.combine(local.date() - timedelta(days=1), at, tzinfo=zone)


@dataclass(frozen=True)
class ClockStamp:
    """How this device's wall clock relates to its boot clock at one moment.

    ``anchor`` is wall time minus time since boot: constant while the wall clock runs
    (NTP slewing moves both alike), shifted by exactly the step when someone or something
    sets the clock. A server-clock offset measured under one stamp is valid only while the
    stamp agrees; a different boot never agrees (its boot clock started again).
    """

    boot: str
    anchor: float

    def agrees(self, other: ClockStamp) -> bool:
        return self.boot == other.boot and abs(self.anchor - other.anchor) <= JUMP_TOLERANCE

    def text(self) -> str:
        return f"{self.boot} {self.anchor!r}"

    @classmethod
    def parse(cls, text: str | None) -> ClockStamp | None:
        boot, _, anchor = (text or "").partition(" ")
        try:
            return cls(boot, float(anchor))
        except ValueError:
            return None


def _boot_id() -> str:
    try:
        with open(_BOOT_ID, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"


_THIS_BOOT = _boot_id()
# Counts during suspend too where the OS can (a resumed laptop has not jumped).
_BOOT_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def clock_stamp() -> ClockStamp:
    return ClockStamp(_THIS_BOOT, time.time() - time.clock_gettime(_BOOT_CLOCK))
