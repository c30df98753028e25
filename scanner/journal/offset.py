"""The server-clock offset used to stamp scans and decide on server time, kept across restarts.

vivenu orders scans by ``scanned_at``, and timeslots are server times, so a gate whose clock
drifted would misplace its scans and misjudge slots. The API client measures
server-minus-device seconds from each answer's Date header; this keeps the last measurement
in the journal's ``meta`` so a gate that restarts offline still corrects its clock.

An offset is only as good as the device clock it was measured against. When that clock is
stepped (NTP fixing it, an operator setting it) every earlier offset is off by the step, so:

- every call compares the device clock's stamp (wall vs boot clock, ``ClockStamp``) with
  the previous call's; after a jump the saved offset is void and the live one in hand is
  stale until the client measures a new one at the next server answer;
- a saved offset applies only under the stamp it was saved with: same boot, clock not set
  since (an offline restart after NTP corrected the clock gets no stale offset).

Without a valid offset the gate uses device time (offset 0). That is the safer of the two
wrong answers: a step is nearly always a correction, after which device time is right and
the old offset would count the error twice; and the next answer re-measures it anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from scanner.clock import ClockStamp, clock_stamp
from scanner.errors import StoreError
from scanner.journal.journal import Journal

log = logging.getLogger("scanner.journal")

# Date headers have one-second resolution, so smaller changes are noise not worth a write.
PERSIST_STEP = 0.5


class ServerOffset:
    """Callable giving the offset in seconds: live from the client if valid, else saved.

    Saving a new offset is an fsync'd write, so it runs on a worker thread: the scan that
    noticed the change does not wait for it. ``close`` waits for the last save.
    """

    def __init__(self, journal: Journal, live: Callable[[], float | None], *,
                 stamp: Callable[[], ClockStamp] = clock_stamp) -> None:
        self._journal = journal
        self._live = live
        self._stamp = stamp
        self._seen = stamp()
        # Once, here, not on the first scan.
        saved = journal.saved_clock_offset()
        saved_under = ClockStamp.parse(journal.saved_clock_stamp())
        if saved is not None and (saved_under is None or not saved_under.agrees(self._seen)):
            log.warning("the saved server clock offset (%+.1f s) was measured before the "
                        "device clock was set or the device restarted; using device time "
                        "until the server answers", saved)
            saved = None
        self._saved = saved
        self._stale: float | None = None  # the live offset in hand when the clock jumped
        self._saver: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def __call__(self) -> float:
        now = self._stamp()
        if not now.agrees(self._seen):
            log.warning("the device clock jumped by %+.1f s; using device time until the "
                        "server answers again", now.anchor - self._seen.anchor)
            self._saved, self._stale = None, self._live()
        self._seen = now
        live = self._live()
        if live is not None and live == self._stale:
            live = None  # measured before the jump; a new answer gives a new value
        elif live is not None:
            self._stale = None
        if live is None:
            return self._saved or 0.0
        if self._saved is None or abs(live - self._saved) >= PERSIST_STEP:
            self._saved = live
            if self._saver is None:
                self._saver = ThreadPoolExecutor(1, thread_name_prefix="offset-save")
            self._pending = self._saver.submit(self._save, live, now.text())
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

    def _save(self, offset: float, stamp: str) -> None:
        try:
            self._journal.save_clock_offset(offset, stamp)
        except StoreError as exc:  # scans still stamp with the live offset meanwhile
            log.warning("could not keep the server clock offset: %s", exc)
