"""Whether this gate decides alone: the link's one line when partitioned, one when healed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Partition:
    """Whether this gate decides alone, since when, and whether it has said so."""

    said: bool = False              # "partitioned" was logged and is shown
    ever_connected: bool = False
    alone_at: float | None = None   # monotonic start of deciding alone; None: connected
    since_wall: str | None = None   # the same, ISO UTC, for people
    lasted: float = 0.0             # how long the last partition lasted

    def reset(self, now: float, wall: str) -> None:
        self.alone_at, self.since_wall = now, wall

    def observe(self, up: bool, now: float, wall: Callable[[], str], *,
                grace: float) -> str | None:
        """The change to report: "partitioned", "healed", "connected", or None. A gate
        never connected yet says partitioned once ``grace`` has passed without a broker.
        ``wall`` (the time for people) is asked only when deciding alone begins: this runs
        on every round of the link."""
        if up:
            if self.alone_at is None:
                return None
            change = "healed" if self.said else "connected"
            self.lasted = now - self.alone_at
            self.said, self.ever_connected = False, True
            self.alone_at = self.since_wall = None
            return change
        if self.alone_at is None:
            self.alone_at, self.since_wall = now, wall()
        if not self.said and (self.ever_connected or now - self.alone_at >= grace):
            self.said = True
            return "partitioned"
        return None
