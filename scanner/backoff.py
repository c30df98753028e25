"""How the long-running workers (sync, upload) wait while vivenu stays unreachable."""

from __future__ import annotations

# A dead server is asked again at least every five minutes, however long the outage.
MAX_BACKOFF = 300.0


def doubled(wait: float, floor: float, cap: float = MAX_BACKOFF) -> float:
    """The wait after another failure: twice the last one (at least ``floor``), capped.

    Doubling the previous wait rather than computing ``floor * 2 ** failures`` never
    overflows, however many failures in a row.
    """
    return min(max(wait, floor) * 2, cap)
