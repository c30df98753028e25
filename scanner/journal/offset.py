"""The server-clock offset used to stamp scans, kept across restarts.

vivenu orders scans by ``scanned_at``, so a gate whose clock drifted would misplace its scans
among other gates'. The API client measures server-minus-device seconds from each answer's
Date header; this keeps the last measurement in the journal's ``meta`` so a gate that
restarts offline still corrects its clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from scanner.errors import StoreError
from scanner.journal.journal import Journal

log = logging.getLogger("scanner.journal")

# Date headers have one-second resolution, so smaller changes are noise not worth a write.
PERSIST_STEP = 0.5


class ServerOffset:
    """Callable giving the offset in seconds: live from the client if known, else saved.

    Saving a new offset is an fsync'd write, so it runs on a worker thread: the scan that
    noticed the change does not wait for it. ``close`` waits for the last save.
    """

    def __init__(self, journal: Journal, live: Callable[[], float | None]) -> None:
        self._journal = journal
        self._live = live
        self._saved = journal.saved_clock_offset()  # once, here, not on the first scan
        self._saver: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def __call__(self) -> float:
        live = self._live()
        if live is None:
            return self._saved or 0.0
        if self._saved is None or abs(live - self._saved) >= PERSIST_STEP:
            self._saved = live
            if self._saver is None:
                self._saver = ThreadPoolExecutor(1, thread_name_prefix="offset-save")
            self._pending = self._saver.submit(self._save, live)
        return live

    def flush(self) -> None:
        """Wait until the last offset noticed is saved."""
        if self._pending is not None:
            self._pending.result()

    def close(self) -> None:
        self.flush()
        if self._saver is not None:
            self._saver.shutdown()
            self._saver = None

    def _save(self, offset: float) -> None:
        try:
            self._journal.save_clock_offset(offset)
        except StoreError as exc:  # scans still stamp with the live offset meanwhile
            log.warning("could not keep the server clock offset: %s", exc)
