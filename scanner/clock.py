"""Time sources. Logic takes ``now`` as an argument; only the composition root reads clocks."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], datetime]


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
