"""Which grant a passage pulse belongs to. Pure: times are monotonic seconds passed in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Open:
    scan_id: str
    opened_at: float
    deadline: float


class PassageTracker:
    """Grants waiting for their passage, oldest first: people pass in the order they were
    let through, so a pulse belongs to the oldest grant still within its timeout."""

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"passage_timeout: must be positive, not {timeout}")
        self.timeout = timeout
        self._open: deque[_Open] = deque()

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, scan_id: str, now: float) -> None:
        self._open.append(_Open(scan_id, now, now + self.timeout))

    def expired(self, now: float) -> list[str]:
        """Grants whose timeout ran out before ``now``: opened, not passed."""
        gone = []
        while self._open and self._open[0].deadline < now:
            gone.append(self._open.popleft().scan_id)
        return gone

    def passed(self, at: float) -> str | None:
        """The grant a passage at ``at`` completes, or None (nobody was let through:
        a push without a scan, or a second person on one grant). Call ``expired(at)`` first."""
        if self._open and self._open[0].opened_at <= at:
            return self._open.popleft().scan_id
        return None

    def next_deadline(self) -> float | None:
        return self._open[0].deadline if self._open else None
