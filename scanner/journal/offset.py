"""The server-clock offset used to stamp scans, kept across restarts.

vivenu orders scans by ``scanned_at``, so a gate whose clock drifted would misplace its scans
among other gates'. The API client measures server-minus-device seconds from each answer's
Date header; this keeps the last measurement in the journal's ``meta`` so a gate that
restarts offline still corrects its clock.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.journal.journal import Journal

# Date headers have one-second resolution, so smaller changes are noise; saving each would
# cost an fsync on the scan path.
PERSIST_STEP = 0.5


class ServerOffset:
    """Callable giving the offset in seconds: live from the client if known, else saved."""

    def __init__(self, journal: Journal, live: Callable[[], float | None]) -> None:
        self._journal = journal
        self._live = live
        self._loaded = False
        self._saved: float | None = None

    def __call__(self) -> float:
        if not self._loaded:
            self._saved = self._journal.saved_clock_offset()
            self._loaded = True
        live = self._live()
        if live is None:
            return self._saved or 0.0
        if self._saved is None or abs(live - self._saved) >= PERSIST_STEP:
            self._journal.save_clock_offset(live)
            self._saved = live
        return live
