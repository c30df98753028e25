"""The server-clock offset used to stamp scans and decide on, judged and kept across restarts.

vivenu orders scans by ``scanned_at``, and timeslots are server times, so a gate whose clock
drifted would misplace its scans and misjudge slots. The API client measures
server-minus-device seconds from each answer's Date header; this judges each measurement by
the clock guard's rule (``scanner.clock_guard.judge``: within ``[run] clock_bound`` of a
believable device clock, never backwards against what the server said before) and keeps in
the journal's ``meta`` the last offset adopted and the server time last seen, so a gate that
restarts offline still corrects its clock and still knows how late it already was.

An offset is only as good as the device clock it was measured against. When that clock is
stepped (NTP fixing it, an operator setting it) every earlier offset is off by the step, so:

- every call compares the device clock's stamp (wall vs boot clock, ``ClockStamp``) with
  the previous call's; after a jump the adopted offset is void and the live one in hand is
  stale until the client measures a new one at the next server answer;
- a saved offset applies only under the stamp it was saved with: same boot, clock not set
  since (an offline restart after NTP corrected the clock gets no stale offset).

Without an adopted offset the gate uses device time (offset 0). That is the safer of the two
wrong answers: a step is nearly always a correction, after which device time is right and
the old offset would count the error twice; and the next answer re-measures it anyway. When
the device time is not believable either, ``trusted()`` is False and time-dependent rules
deny rather than guess.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from scanner.clock import Clock, ClockStamp, clock_stamp, utc_now
from scanner.clock_guard import (
    ADOPTED,
    NO_ANSWER,
    VERDICTS,
    ClockState,
    ServerSeen,
    believable_from,
    device_state,
    judge,
)
from scanner.config import DEFAULT_CLOCK_BOUND
from scanner.errors import StoreError
from scanner.journal.journal import Journal
from scanner.tickets import parse_iso, utc_iso

log = logging.getLogger("scanner.journal")

# Date headers have one-second resolution, so smaller changes are noise not worth a write.
PERSIST_STEP = 0.5
# How often the server time is saved while it keeps agreeing: after a reboot it is the floor
# a replayed Date must not go below, so it should not lag far behind.
SEEN_EVERY = timedelta(minutes=5)
# A refused claim is saved again only when it moves this much: a server answering every
# sync with the same wrong clock is not worth a write each time.
MOVED = 60.0


class MeasuredOffset:
    """The server-minus-device seconds this gate's API clients measured last, None before
    any answer: the clients write it, ``ServerOffset`` reads it. A gate that never builds a
    client (``gate check`` offline) keeps None."""

    def __init__(self) -> None:
        self._offset: float | None = None

    def set(self, offset: float) -> None:
        self._offset = offset

    def __call__(self) -> float | None:
        return self._offset


class ServerOffset:
    """Callable giving the offset in seconds: the live one if adopted, else the last adopted.

    Saving is an fsync'd write, so it runs on a worker thread: the scan that noticed the
    change does not wait for it. ``close`` waits for the last save.
    """

    def __init__(self, journal: Journal, live: Callable[[], float | None], *,
                 clock: Clock = utc_now, bound: float = DEFAULT_CLOCK_BOUND,
                 stamp: Callable[[], ClockStamp] = clock_stamp) -> None:
        self._journal = journal
        self._live = live
        self._clock = clock
        self._bound = timedelta(seconds=bound)
        self._stamp = stamp
        self._lock = threading.Lock()  # lanes, lookups and the kiosk ask at once
        self._saver: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._newest: datetime | None = None
        self._seen = ServerSeen.parse(journal.server_seen())
        self._floor: datetime | None = None
        self._read_newest()
        self._last_stamp = stamp()
        self._good: float | None = None       # the offset adopted last, under this clock
        self._stale: float | None = None      # the live offset in hand when the clock jumped
        self._claimed: float | None = None    # the live offset judged last
        self._verdict = NO_ANSWER
        self._judged: tuple[float | None, bool] | None = None
        self._trusted = True
        self._saved_offset: float | None = None
        self._saved_verdict: tuple[str, float] | None = None
        self._keep_again = datetime.min.replace(tzinfo=UTC)  # when to save the seen time
        self._adopt_saved(journal.saved_clock_offset(),
                          ClockStamp.parse(journal.saved_clock_stamp()))
        self._load_verdict(journal.server_clock())

    def _adopt_saved(self, saved: float | None, saved_under: ClockStamp | None) -> None:
        """Once, here, not on the first scan: the saved offset, if it still holds."""
        if saved is None:
            return
        if saved_under is None or not saved_under.agrees(self._last_stamp):
            log.warning("the saved server clock offset (%+.1f s) was measured before the "
                        "device clock was set or the device restarted; using device time "
                        "until the server answers", saved)
            return
        now = self._clock()
        verdict = judge(now + timedelta(seconds=saved), now, believable=self._believable(now),
                        floor=self._floor, seen=None, stamp=self._last_stamp,
                        bound=self._bound, live=False)
        if verdict in ADOPTED:
            self._good = self._saved_offset = saved
        else:
            log.error("the saved server clock offset (%+.0f s) is beyond what the device "
                      "clock allows (%s); not used", saved, verdict)

    def _load_verdict(self, text: str | None) -> None:
        """The verdict another process (the daemon) saved, if made under this clock."""
        verdict, _, rest = (text or "").partition(" ")
        claimed, _, stamp_text = rest.partition(" ")
        under = ClockStamp.parse(stamp_text)
        if under is None or not under.agrees(self._last_stamp) or verdict not in VERDICTS:
            return
        try:
            self._verdict, self._claimed = verdict, float(claimed)
        except ValueError:
            return
        self._saved_verdict = (verdict, self._claimed)

    def refresh(self) -> None:
        """After a sync: read the newest journal stamp again (the device clock must not be
        before it) and judge the server's latest Date now, not at the next scan."""
        self._read_newest()
        with self._lock:
            self._update()

    def _read_newest(self) -> None:
        newest = self._journal.newest_scanned_at()
        self._newest = parse_iso(newest) if newest else None
        self._set_floor()

    def _set_floor(self) -> None:
        """The latest time this gate has seen: its newest stamp, the server time adopted."""
        times = [t for t in (self._newest, self._seen.server if self._seen else None) if t]
        self._floor = max(times, default=None)
        self._believable_from = believable_from(self._floor, self._bound)

    def __call__(self) -> float:
        with self._lock:
            self._update()
            return 0.0 if self._good is None else self._good

    def trusted(self) -> bool:
        """Whether the time last given can decide time-dependent rules (call it after)."""
        return self._trusted

    def state(self) -> ClockState:
        """The clock guard's report of the device clock and the server's last claim."""
        with self._lock:
            self._update()
            now = self._clock()
            offset = 0.0 if self._good is None else self._good
            floor = self._floor
            return ClockState(device_state(now, floor, self._bound), self._verdict,
                              utc_iso(now), utc_iso(floor) if floor else None, offset,
                              self._claimed, self._bound.total_seconds(), self._trusted,
                              utc_iso(now + timedelta(seconds=offset)))

    # -- the rule, applied ---------------------------------------------------------------

    def _believable(self, now: datetime) -> bool:
        return now >= self._believable_from

    def _update(self) -> None:
        stamp = self._stamp()
        if not stamp.agrees(self._last_stamp):
            log.warning("the device clock jumped by %+.1f s; using device time until the "
                        "server answers again", stamp.anchor - self._last_stamp.anchor)
            self._good, self._stale, self._judged = None, self._live(), None
            self._keep_again = datetime.min.replace(tzinfo=UTC)
            self._verdict, self._claimed = NO_ANSWER, None
        self._last_stamp = stamp
        live = self._live()
        if live is not None and live == self._stale:
            live = None  # measured before the jump; a new answer gives a new value
        elif live is not None:
            self._stale = None
        now = self._clock()
        believable = self._believable(now)
        if (live, believable) != self._judged:
            self._judged = (live, believable)
            self._judge(live, now, believable, stamp)
        elif now >= self._keep_again and live is not None and self._verdict in ADOPTED:
            self._keep(live, now, stamp)
        self._trusted = believable or self._good is not None

    def _judge(self, live: float | None, now: datetime, believable: bool,
               stamp: ClockStamp) -> None:
        if live is None:
            return  # no answer under this clock yet: the last verdict stands
        previous = self._verdict
        self._claimed = live
        self._verdict = judge(now + timedelta(seconds=live), now, believable=believable,
                              floor=self._floor, seen=self._seen, stamp=stamp,
                              bound=self._bound)
        if self._verdict in ADOPTED:
            self._good = live
            self._keep(live, now, stamp)
        elif previous != self._verdict:
            kept = "device time" if self._good is None else f"offset {self._good:+.1f} s"
            log.error("server clock refused (%s): its Date says %+.0f s from the device clock "
                      "%s (bound %.0f s); keeping %s", self._verdict, live, utc_iso(now),
                      self._bound.total_seconds(), kept)
        saved = self._saved_verdict
        if saved is None or saved[0] != self._verdict or abs(saved[1] - live) >= MOVED:
            self._saved_verdict = (self._verdict, live)
            self._submit(self._journal.save_server_clock,
                         f"{self._verdict} {live!r} {stamp.text()}")

    def _keep(self, offset: float, now: datetime, stamp: ClockStamp) -> None:
        """Remember an adopted offset and the server time it gives, durably when changed."""
        self._seen = ServerSeen(now + timedelta(seconds=offset), now, stamp)
        self._set_floor()
        moved = self._saved_offset is None or abs(offset - self._saved_offset) >= PERSIST_STEP
        if not moved and now < self._keep_again:
            return
        self._saved_offset, self._keep_again = offset, now + SEEN_EVERY
        self._submit(lambda text: self._journal.save_clock_offset(
            offset, stamp.text(), seen=text), self._seen.text())

    # -- saving ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Wait until the last offset noticed is saved."""
        if self._pending is not None:
            self._pending.result()

    def close(self) -> None:
        self.flush()
        if self._saver is not None:
            self._saver.shutdown()
            self._saver = None

    def _submit(self, save: Callable[[str], object], text: str) -> None:
        if self._saver is None:
            self._saver = ThreadPoolExecutor(1, thread_name_prefix="offset-save")
        self._pending = self._saver.submit(self._save, save, text)

    @staticmethod
    def _save(save: Callable[[str], object], text: str) -> None:
        try:
            save(text)
        except StoreError as exc:  # scans still stamp with the offset in hand meanwhile
            log.warning("could not keep the server clock offset: %s", exc)
