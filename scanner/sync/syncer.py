"""The sync job: keeps the ticket store equal to the server's ticket lists.

Per event and run, one of:

- **full** (first run of an event) and **reconcile** (every ``reconcile_every``): page the
  whole list pinned at ``until = T0`` with the shift-safe pager (``pager.py``), writing
  each page with the cursor after it (several pages to a transaction, ``store.batch``), so
  a run killed at any instant resumes after the last committed page; then a catch-up
  delta ``from = T0 - window_overlap`` for what changed while paging; then a sweep of the
  tickets the run did not see (hard deletes): each page marks its ids as seen
  (``store.seen``), so unchanged tickets cost no row writes.
- **delta**: the window ``from = last until - window_overlap``, ``until = server now``.
  Windows overlap because device and server clocks differ and a write may become visible
  after we asked; the store's newer-wins upsert makes re-reading harmless.

Server time is the local clock plus the client's offset from the HTTP Date header, read
after ``/me``, which is fetched (and stored) at the start of every run. Every time the sync
keeps (``last_full_at``, the delta watermark) is server time, so a device clock that is
wrong, or is corrected, never moves them; one found in the future anyway (written by an
older version or a server whose clock went back) makes the reconcile due, never postponed.

The deletion guard: a reconciling run that would delete more than ``max_deletion_share`` of
an event's stored tickets, or all of them, deletes nothing. It stops before writing a page
whose listing ``total`` already says so, else it pages everything and holds only the sweep.
The hold is recorded for ``gate status`` and lifted by ``run_once(accept_deletions=True)``
(``gate sync --once --accept-deletions``), which reconciles held events at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scanner.clock import Clock, utc_now
from scanner.config import SyncConfig
from scanner.errors import NotFound, PagingError, SyncError
from scanner.store.sync_state import HeldDeletions, SyncState
from scanner.store.upsert import stored_row
from scanner.sync.pager import Cursor, next_skip, pages
from scanner.sync.progress import progress_bar
from scanner.tickets import parse_iso, utc_iso

log = logging.getLogger("scanner.sync")

# Pages downloaded ahead of the one being parsed and written (0 or 1): the download runs
# in the client's thread, the parse and the write on the sync's own.
PREFETCH_DEPTH = 1
# Windows end this far past the estimated server time. The Date header the estimate comes
# from has one-second resolution, and a window ending early misses a change made just
# before the request until the next run; one ending late is harmless: a ticket changed
# while we page then stays in the window and moves to its end, where the pager reads it.
UNTIL_MARGIN = timedelta(seconds=1)


class Stopped(SyncError):
    """The stop event was set during a run; committed pages stay, the run resumes later."""


@dataclass(frozen=True)
class EventReport:
    event_id: str
    mode: str            # full | reconcile | delta
    fetched: int         # tickets received (new ones only, overlap re-reads excluded)
    upserted: int        # tickets inserted or changed in the store
    swept: int           # tickets deleted because the server no longer lists them
    pages: int           # HTTP requests for ticket pages
    seconds: float
    total: int           # tickets of this event in the store afterwards
    resumed: bool = False
    held: int = 0        # deletions held back by the guard (nothing was deleted)
    malformed: int = 0   # tickets stored not admissible: fields the API does not allow
    # How the full listing's pages were written (``scanner.store.batch``: whole, sliced,
    # bulk) and in how many transactions; empty and 0 for a delta.
    written: str = ""
    commits: int = 0

    def line(self) -> str:
        swept = f", -{self.swept} swept" if self.swept else ""
        held = f", {self.held} deletions held" if self.held else ""
        resumed = " (resumed)" if self.resumed else ""
        return (f"sync {self.event_id}: {self.mode}{resumed} +{self.upserted} tickets{swept}"
                f"{held} in {self.seconds:.2f} s (total {self.total})")


@dataclass
class _Tally:
    fetched: int = 0
    upserted: int = 0
    pages: int = 0
    total: int | None = None
    # Lines naming tickets stored not admissible, once each (a catch-up re-reads some).
    malformed: dict[str, None] = field(default_factory=dict)
    written: str = ""
    commits: int = 0


class Syncer:
    def __init__(self, api: Any, store: Any, config: SyncConfig, *,
                 events: tuple[str, ...] = (), clock: Clock = utc_now,
                 progress: bool | None = None, prefetch: int = PREFETCH_DEPTH) -> None:
        self.api = api
        self.store = store
        self.config = config
        self.events = tuple(events)
        self.clock = clock
        self.progress = progress
        self.prefetch = prefetch
        self._stop: threading.Event | None = None
        self._accepting: frozenset[str] = frozenset()  # events whose held deletions apply

    # -- runs --------------------------------------------------------------------------

    def run_once(self, stop: threading.Event | None = None, *,
                 accept_deletions: bool = False) -> list[EventReport]:
        """Sync every event once; raises the first fault after committing what it could.
        ``accept_deletions``: reconcile every event with held deletions now and apply what
        the server lists, whatever it deletes (an operator's explicit decision)."""
        self._stop = stop
        self._accepting = frozenset(self.store.held_deletions()) if accept_deletions \
            else frozenset()
        self.store.save_settings(self.api.me())
        reports = []
        for event_id in self._event_ids():
            report = self.sync_event(event_id)
            log.info("%s", report.line())
            reports.append(report)
        return reports

    def sync_event(self, event_id: str) -> EventReport:
        try:
            return self._sync_event(event_id)
        except NotFound as exc:
            # A mistyped or foreign event id is an operator's mistake: name where to look.
            raise NotFound(f"event {event_id} not found on vivenu; `gate events` lists this "
                           "token's events", status=exc.status) from exc

    def _sync_event(self, event_id: str) -> EventReport:
        state = self.store.sync_state(event_id)
        if state is None or state.last_full_at is None:
            return self._full(event_id, state, "full")
        if state.full_in_progress or event_id in self._accepting \
                or self._reconcile_due(state):
            return self._full(event_id, state, "reconcile")
        return self._delta(event_id, state)

    def refresh_events(self) -> list[dict[str, Any]]:
        """The events this device may scan, asked of the server and stored."""
        docs: list[dict[str, Any]] = self.api.events()
        self.store.save_events(docs)
        return docs

    # -- modes -------------------------------------------------------------------------

    def _full(self, event_id: str, state: SyncState | None, mode: str) -> EventReport:
        started = time.monotonic()
        resumed = state is not None and state.full_in_progress
        if resumed:
            assert state is not None and state.full_until is not None
            until = state.full_until
            cursor = Cursor(state.full_skip or 0, state.full_anchor, state.full_total)
            log.info("sync %s: resuming %s sync after ticket %d", event_id, mode, cursor.skip)
        else:
            until = utc_iso(self._server_now() + UNTIL_MARGIN)
            self.store.begin_full(event_id, until)
            cursor = Cursor()
        tally = _Tally()
        guarded = event_id not in self._accepting
        stored = self.store.count(event_id)
        # Only a reconcile stops at a collapsed total: an event that never finished a full
        # sync has no deltas to fall back on, so it pages on and only its sweep is guarded.
        collapse_guard = guarded and mode == "reconcile"
        fetch = self._fetcher(event_id, None, until)
        trusted = self._trusted_until()  # once per listing: the upsert compiles once
        bar = progress_bar(self.progress if mode == "full" else False, f"sync {event_id}")
        try:
            # Leaving the batch commits its whole pages, also on a fault or a stop, before
            # anything else here writes the store.
            # Only the first full sync of a store serving no other event has no decisions
            # to be gentle to; the first full sync of an event beside served ones writes
            # rows of its own, in bulk, checkpointed seldom (``scanner.store.batch``).
            first = mode == "full"
            in_service = not first or self.store.serves_other_events(event_id)
            with self.store.page_batch(in_service=in_service,
                                       new_event=first and in_service) as batch:
                tally.written = batch.mode
                for page in pages(fetch, page_size=self.config.page_size, cursor=cursor,
                                  max_tickets=self.config.max_event_tickets):
                    self._check_stop()
                    c = page.cursor
                    if collapse_guard and c.total is not None \
                            and self._too_many(stored - c.total, stored):
                        # Checked before the page is written: a collapsed listing touches
                        # nothing (the pages before it are committed first).
                        batch.commit()
                        self._count(tally, page)
                        held = self._held(event_id, stored - c.total, stored, "total",
                                          c.total)
                        self.store.hold_full(held)
                        return self._report(event_id, mode, tally, 0, started, resumed, held)
                    tally.upserted += batch.save_page(
                        event_id, page.tickets, mark=True, skip=c.skip,
                        anchor=c.anchor, total=c.total, trusted_until=trusted,
                        overwrite=mode == "reconcile")
                    self._count(tally, page)
                    if bar.total != c.total:
                        bar.total = c.total
                        bar.refresh()
                    bar.update(len(page.tickets))
            tally.commits = batch.commits  # after the batch's last commit, on leaving it
        except PagingError:
            # The cursor no longer means anything: the next run starts a new full sync.
            self.store.abandon_full(event_id)
            raise
        finally:
            bar.close()
        full_total = tally.total
        catch_up = parse_iso(until) - timedelta(seconds=self.config.window_overlap)
        # The catch-up marks too: a ticket sold while the listing was paged is no deletion.
        delta_until = self._window(event_id, utc_iso(catch_up), tally, mark=True)
        self._check_complete(event_id, full_total)
        unseen = self.store.unseen(event_id) if guarded else 0
        # Counting a million rows costs a noticeable share of a sync: only when the guard
        # has something to weigh (nothing unseen is never too many).
        stored = self.store.count(event_id) if guarded and unseen else 0
        if guarded and self._too_many(unseen, stored):
            held = self._held(event_id, unseen, stored, "sweep", full_total)
            self.store.hold_full(held, delta_until=delta_until, server_total=full_total)
            return self._report(event_id, mode, tally, 0, started, resumed, held)
        swept = self.store.finish_full(event_id, delta_until=delta_until,
                                       server_total=full_total,
                                       at=utc_iso(self._server_now()),
                                       unseen=unseen if guarded else None)
        return self._report(event_id, mode, tally, swept, started, resumed)

    def _delta(self, event_id: str, state: SyncState) -> EventReport:
        started = time.monotonic()
        assert state.delta_until is not None
        since = parse_iso(state.delta_until) - timedelta(seconds=self.config.window_overlap)
        tally = _Tally()
        until = self._window(event_id, utc_iso(since), tally)
        self.store.finish_delta(event_id, until=until, at=utc_iso(self._server_now()))
        return self._report(event_id, "delta", tally, 0, started, False)

    def _window(self, event_id: str, since: str, tally: _Tally, *, mark: bool = False) -> str:
        """Read every ticket changed in ``[since, server now)`` (``mark``: as seen by the
        full sync in progress); returns the upper bound."""
        # Never end a window before it starts, whatever the clocks did meanwhile.
        until = utc_iso(max(self._server_now() + UNTIL_MARGIN,
                            parse_iso(since) + timedelta(seconds=1)))
        fetch = self._fetcher(event_id, since, until)
        trusted = self._trusted_until()
        read, total = 0, 0
        # Nothing of a window is final before its watermark is saved: a run that stops
        # midway reads it again, so its pages may share transactions freely.
        with self.store.page_batch(in_service=True) as batch:
            for page in pages(fetch, page_size=self.config.page_size,
                              max_tickets=self.config.max_event_tickets):
                self._check_stop()
                tally.upserted += batch.save_page(event_id, page.tickets, mark=mark,
                                                  trusted_until=trusted)
                self._count(tally, page)
                read, total = read + len(page.tickets), page.cursor.total or 0
        if read < total:
            # Nothing joins a pinned window while it is paged: each ticket it lists at the
            # end was read once at least. Fewer were: the listing skipped some, and saving
            # the watermark would leave their changes unread until the next reconcile.
            raise PagingError(f"ticket changes of {event_id} since {since}: the listing "
                              f"claims {total}, {total - read} of them were not read; the "
                              "next run reads them again")
        return until

    # -- helpers -----------------------------------------------------------------------

    def _event_ids(self) -> tuple[str, ...]:
        if self.events:
            return self.events
        return tuple(doc["_id"] for doc in self.refresh_events())

    def _fetcher(self, event_id: str, since: str | None, until: str) -> Any:
        api, ahead = self.api, self.prefetch > 0

        def fetch(skip: int, top: int) -> Any:
            # The page after this one, should the list not shift, downloads meanwhile. The
            # docs become the store's rows at once: no Ticket is built only to be taken apart.
            return api.ticket_page(event_id, top=top, skip=skip, from_=since, until=until,
                                   ahead=next_skip(skip, top) if ahead else None,
                                   parse=stored_row)

        return fetch

    def _trusted_until(self) -> str:
        """The latest ``updatedAt`` trusted to win a merge: server time plus a tolerance."""
        return utc_iso(self._server_now() + timedelta(seconds=self.config.future_tolerance))

    def _server_now(self) -> datetime:
        offset = self.api.clock_offset or 0.0  # None before the first answer
        return self.clock() + timedelta(seconds=offset)

    def _reconcile_due(self, state: SyncState) -> bool:
        assert state.last_full_at is not None
        now = self._server_now()
        # Bookkeeping later than server time (plus the overlap that absorbs offset noise)
        # was written by a clock that ran ahead; trusting it would postpone the reconcile,
        # or read empty delta windows, for as long as the clock was off.
        latest = now + timedelta(seconds=self.config.window_overlap) + UNTIL_MARGIN
        ahead = [name for name, value in (("last_full_at", state.last_full_at),
                                          ("delta_until", state.delta_until))
                 if value is not None and parse_iso(value) > latest]
        if ahead:
            log.warning("sync %s: %s lies in the future of the server's clock (%s); "
                        "reconciling now", state.event_id, " and ".join(ahead), utc_iso(now))
            return True
        due = parse_iso(state.last_full_at) + timedelta(seconds=self.config.reconcile_every)
        # The estimate of server time moves by up to a second between answers (Date's
        # resolution): a reconcile that early costs nothing, one that late could be skipped.
        return now + UNTIL_MARGIN >= due

    def _check_complete(self, event_id: str, total: int | None) -> None:
        """Every ticket still listed at the end of a pinned listing was listed all along,
        so a complete paging marked at least ``total``. Fewer: the listing's order (not
        documented) moved between requests and the pager took tickets for read that it
        skipped. Sweeping would delete some of them and finishing would leave them out
        until the next reconcile: the run is abandoned instead (what it read is kept)."""
        listed = self.store.seen_marks(event_id) if total else 0
        if total and listed < total:
            self.store.abandon_full(event_id)
            raise PagingError(f"ticket listing of {event_id} moved while it was paged: it "
                              f"lists {total} tickets, {total - listed} of them were not "
                              "read; nothing swept, the next run reads it again")

    def _too_many(self, lost: int, stored: int) -> bool:
        """Whether losing ``lost`` of ``stored`` tickets needs an operator's consent."""
        return lost > 0 and (lost >= stored or lost > self.config.max_deletion_share * stored)

    def _held(self, event_id: str, count: int, stored: int, kind: str,
              server_total: int | None) -> HeldDeletions:
        held = HeldDeletions(event_id=event_id, count=count, stored=stored, kind=kind,
                             server_total=server_total, at=utc_iso(self._server_now()))
        log.warning("sync %s: held back deleting %s, more than sync.max_deletion_share "
                    "(%g); nothing deleted; to apply: gate sync --once --accept-deletions",
                    event_id, held.describe(), self.config.max_deletion_share)
        return held

    def _check_stop(self) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Stopped("sync stopped; it resumes from the last committed page")

    @staticmethod
    def _count(tally: _Tally, page: Any) -> None:
        tally.fetched += len(page.tickets)
        tally.pages += page.requests
        tally.total = page.cursor.total
        tally.malformed.update(dict.fromkeys(page.problems))

    def _report(self, event_id: str, mode: str, tally: _Tally, swept: int, started: float,
                resumed: bool, held: HeldDeletions | None = None) -> EventReport:
        if tally.malformed:  # once per run: a bad server must not flood the log
            log.warning("sync %s: %d ticket(s) stored as not admissible, their fields break "
                        "the API's types; first: %s", event_id, len(tally.malformed),
                        next(iter(tally.malformed)))
        return EventReport(event_id=event_id, mode=mode, fetched=tally.fetched,
                           upserted=tally.upserted, swept=swept, pages=tally.pages,
                           malformed=len(tally.malformed), written=tally.written,
                           commits=tally.commits,
                           seconds=time.monotonic() - started,
                           total=self.store.count(event_id), resumed=resumed,
                           held=held.count if held else 0)
