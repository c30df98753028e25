"""The one decision path: read -> ticket -> history -> decision -> journal.

``gate check``, ``gate scan`` and the daemon all call ``Gatekeeper.check``, so what an
operator tries at the command line is exactly what the turnstile does.

Order of a check: a scan id is made first (so every later step can refer to the scan), the
read is validated, the ticket is looked up in the local store (and, for a barcode the store
does not know, online under a hard deadline), the history comes from the journal, the pure
rules decide, and the decision is journaled durably before ``check`` returns. Only then may
the caller open the gate. If the journal write fails, ``check`` raises StoreError and the gate
stays closed: an unrecorded entry could not be audited or uploaded.

Latency: the journal stores the decision time (read to decision, before the write);
``CheckResult.latency_ms`` adds the durable write, i.e. how long until the gate may act.
The online fallback runs on a worker thread and is waited for at most ``lookup_deadline``
seconds, whatever the HTTP client does, so a slow server costs the visitor that much at most.
A ticket found online is stored on another worker, off the scan path: that write takes the
ticket store's write lock, which the sync may hold for a whole page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from scanner.clock import Clock, utc_now
from scanner.decide.barcode import check_read
from scanner.decide.model import Decision, Direction, Feedback, Reason, ScanHistory
from scanner.decide.orders import NO_ORDERS, VenueOrders
from scanner.decide.policy import Policy
from scanner.decide.rules import decide
from scanner.errors import NotFound, StoreError
from scanner.journal.ids import new_scan_id
from scanner.journal.journal import Journal
from scanner.printable import escape, unreadable_form
from scanner.tickets import Ticket, TicketStatus, utc_iso

log = logging.getLogger("scanner.gatekeeper")
# One line per decision, whatever asked for it (a lane, the kiosk, gate check, gate scan).
decisions = logging.getLogger("scanner.decision")

# (barcode, event id to ask within or None, deadline in seconds) -> the server's ticket, or
# None when it has none (raising NotFound means the same).
Lookup = Callable[[str, str | None, float], Ticket | None]
# A slow server must not queue lookups behind each other: each gets its own worker, and a
# stuck one only ties up a thread, never the gate (the caller waits at most the deadline).
LOOKUP_WORKERS = 4
# Without a version token, how often the live policy loads /me from the store to compare: a
# settings read costs about as much as a whole decision, so not on every scan.
POLICY_RECHECK = 1.0


class TicketSource(Protocol):
    def by_barcode(self, barcode: str) -> list[Ticket]: ...
    def upsert(self, batch: list[Ticket], /) -> object: ...


@dataclass(frozen=True, slots=True)
class CheckResult:
    decision: Decision
    scan_id: str
    scanned_at: str       # ISO UTC ms, server-clock corrected
    latency_ms: float     # read to durable journal entry: when the gate may act

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of ``gate check --json``."""
        d = self.decision
        return {
            "granted": d.granted,
            "reason": d.reason.value,
            "message": d.message,
            "direction": d.direction.value,
            "barcode": d.barcode,
            "ticket": d.ticket.to_api() if d.ticket else None,
            "offline": d.offline,
            "latency_ms": round(self.latency_ms, 3),
            "scan_id": self.scan_id,
            "scanned_at": self.scanned_at,
        }


class LivePolicy:
    """The policy for the current ``/me`` settings, rebuilt when a sync changed them.

    ``version`` (optional) is a cheap token that moves whenever settings are saved: it is
    asked on every call, and the settings are loaded only when it moved, so the scan after
    a sync saved new settings is decided by them (a gate that starts before its first sync
    must not go on admitting by the defaults once the venue's rules are stored). Without a
    token (``version`` gives None) the settings are loaded and compared every ``recheck``.
    """

    def __init__(self, settings: Callable[[], dict[str, Any] | None],
                 build: Callable[[dict[str, Any] | None], Policy], *,
                 version: Callable[[], object] = lambda: None,
                 recheck: float = POLICY_RECHECK,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._build = build
        self._version = version
        self._recheck = recheck
        self._monotonic = monotonic
        self._checked_at: float | None = None
        self._seen_version: object = None
        self._seen: dict[str, Any] | None = None
        self._policy: Policy | None = None

    def __call__(self) -> Policy:
        version = self._version()
        now = self._monotonic()
        if self._policy is not None and self._checked_at is not None:
            if version is not None and version == self._seen_version:
                return self._policy
            if version is None and now - self._checked_at < self._recheck:
                return self._policy
        self._checked_at = now
        self._seen_version = version
        settings = self._settings()
        if self._policy is None or settings != self._seen:
            self._policy = self._build(settings)
            self._seen = settings
        return self._policy


class HistorySource(Protocol):
    """Where a ticket's past scans come from: the journal, or the venue's union of every
    gate's records (``scanner.mesh.history.MergedHistory``)."""

    def history(self, ticket_id: str) -> ScanHistory: ...


class Zones(Protocol):
    """The gate's zones (``scanner.zones.book.ZoneBook``): the history as seen from the
    gate's zone, what the zone adds to a decision (timed re-entry, capacity; a place is
    kept under ``scan_id``, none for an empty one), capacity alone (``admit``), every
    journaled decision, and a kept place given back."""

    def project(self, history: ScanHistory, now: datetime) -> ScanHistory: ...
    def judge(self, decision: Decision, history: ScanHistory, now: datetime,
              scan_id: str) -> Decision: ...
    def admit(self, decision: Decision, now: datetime, scan_id: str) -> Decision: ...
    def decided(self, decision: Decision, scan_id: str, scanned_at: str) -> None: ...
    def release(self, scan_id: str) -> bool: ...


class Gatekeeper:
    """``history`` defaults to ``journal``; ``journaled`` is called after each durable
    journal write (the mesh link's ``notify``: it must not block); ``orders`` gives what
    the venue's supervisors ordered this gate (``scanner.venue``), asked before each
    decision; ``zones`` adds per-zone anti-passback and capacity (without it the venue is
    one flat zone)."""

    def __init__(self, store: TicketSource, journal: Journal,
                 policy: Policy | Callable[[], Policy], *, lookup: Lookup | None = None,
                 history: HistorySource | None = None,
                 journaled: Callable[[], None] | None = None,
                 orders: Callable[[], VenueOrders] | None = None, zones: Zones | None = None,
                 lookup_deadline: float = 0.4, gate_id: str = "gate", clock: Clock = utc_now,
                 clock_offset: Callable[[], float] = lambda: 0.0,
                 clock_trusted: Callable[[], bool] = lambda: True,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.store = store
        self.journal = journal
        self.history: HistorySource = history or journal
        self._journaled = journaled
        self._orders = orders or _no_orders
        self.zones = zones
        self._policy = policy if callable(policy) else (lambda: policy)
        self._lookup = lookup if lookup_deadline > 0 else None
        self.lookup_deadline = lookup_deadline
        self.gate_id = gate_id
        self._clock = clock
        self._clock_offset = clock_offset
        # Asked after the offset: whether that time may decide timeslots (clock_guard).
        self._clock_trusted = clock_trusted
        self._timer = timer
        self._pool: ThreadPoolExecutor | None = None
        self._keeper: ThreadPoolExecutor | None = None
        self._kept: Future[None] | None = None

    def check(self, barcode: str, direction: Direction, *, refused: str | None = None,
              source: str = "cli") -> CheckResult:
        """Decide one read, journal it durably and log its line (``source``: the reader,
        ``kiosk`` or ``cli``); the gate may act once this returns.

        ``refused`` says why the reader already refused the read (bytes that are not UTF-8,
        control characters): it is then journaled as MALFORMED_READ with that reason, so
        every presented code is audited. A malformed read is journaled in its escaped,
        bounded form (``unreadable_form``), whatever its characters.
        """
        scan_id = new_scan_id()
        started = self._timer()
        device_now = self._clock()
        policy = self._policy()
        if refused is None:
            decision = self._decide(barcode, direction, self._corrected(device_now), policy,
                                    scan_id)
        else:
            decision = Decision(False, Reason.MALFORMED_READ, f"Unreadable code: {refused}",
                                Feedback.RED, direction, barcode)
        if decision.reason is Reason.MALFORMED_READ:
            decision = replace(decision, barcode=unreadable_form(barcode))
        decided_ms = (self._timer() - started) * 1000
        # Read again: an online lookup during this check may have measured the offset.
        scanned_at = utc_iso(self._corrected(device_now))
        try:
            self.journal.record(decision, scan_id=scan_id, scanned_at=scanned_at,
                                latency_ms=decided_ms, event_id=_single(policy.served_events))
        except Exception:
            self.release(scan_id)  # nobody enters on an unjournaled decision
            raise
        if self.zones is not None:
            self.zones.decided(decision, scan_id, scanned_at)
        if self._journaled is not None:
            self._journaled()
        result = CheckResult(decision, scan_id, scanned_at, (self._timer() - started) * 1000)
        # Here, where every decision is journaled, so none goes unlogged whoever asked.
        # ``gate run`` emits log records off the calling thread: this never waits on journald.
        d = decision
        decisions.info("decision %s %s %s %s %s: %s (%.1f ms)", scan_id, d.reason.value,
                       d.direction.value, escape(d.barcode), escape(source),
                       escape(d.message), result.latency_ms)
        return result

    def decide(self, barcode: str, direction: Direction,
               now: datetime | None = None) -> Decision:
        """The decision ``check`` would make, without journaling it (benchmarks, previews)."""
        return self._decide(barcode, direction, now or self._corrected(self._clock()),
                            self._policy())

    def preview(self, barcode: str, direction: Direction) -> CheckResult:
        """What ``check`` would decide now, journaling and queueing nothing: an information
        scan that leaves the ticket as it was. Its ``scan_id`` is empty: no scan exists."""
        started = self._timer()
        now = self._corrected(self._clock())
        decision = self._decide(barcode, direction, now, self._policy())
        if decision.reason is Reason.MALFORMED_READ:
            decision = replace(decision, barcode=unreadable_form(barcode))
        return CheckResult(decision, "", utc_iso(now), (self._timer() - started) * 1000)

    def count(self, decision: Decision, scan_id: str, scanned_at: str) -> None:
        """An entry journaled beside ``check`` (a steward's confirmation, a supervisor's
        override) counted in the gate's zones at once, as ``check`` counts its own."""
        if self.zones is not None:
            self.zones.decided(decision, scan_id, scanned_at)

    def place(self, decision: Decision, scan_id: str) -> Decision:
        """``decision`` (an admission no read made: a supervisor's override) after the
        capacity of the gate's zones, its place kept under ``scan_id`` as ``check`` keeps
        one: counted by ``count``, or given back by ``release``."""
        if self.zones is None:
            return decision
        return self.zones.admit(decision, self._corrected(self._clock()), scan_id)

    def release(self, scan_id: str) -> None:
        """Give back the place kept for ``scan_id`` (a held ticket not confirmed, an entry
        not journaled); nothing when none is kept."""
        if self.zones is not None:
            self.zones.release(scan_id)

    def stamp(self) -> str:
        """Now as a scan is stamped (server-clock corrected), for entries no read made."""
        return utc_iso(self._corrected(self._clock()))

    def tickets(self, barcode: str) -> list[Ticket]:
        """The store's tickets with ``barcode`` (several events may share one)."""
        return self.store.by_barcode(barcode)

    def flush(self) -> None:
        """Wait until the last ticket found online is stored."""
        if self._kept is not None:
            self._kept.result()

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.shutdown()  # a ticket found online is worth its write
            self._keeper = None
        if self._pool is not None:
            # A lookup still waiting on the network is abandoned, not awaited.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- steps ---------------------------------------------------------------------------

    def _corrected(self, device_now: datetime) -> datetime:
        """Device time plus the server offset: slots and scan stamps are server times."""
        return device_now + timedelta(seconds=self._clock_offset())

    def _decide(self, barcode: str, direction: Direction, now: datetime,
                policy: Policy, scan_id: str = "") -> Decision:
        if check_read(barcode, policy.max_read_length) is not None:
            ticket, offline = None, True  # a glitched read is never looked up; decide says why
        else:
            ticket, offline = self._find(barcode, policy)
        history = self.history.history(ticket.id) if ticket is not None else ScanHistory()
        if self.zones is not None:
            history = self.zones.project(history, now)
        decision = decide(ticket, history, policy, direction, now, barcode=barcode,
                          offline=offline, clock_trusted=self._clock_trusted(),
                          orders=self._orders())
        if self.zones is not None and ticket is not None:
            decision = self.zones.judge(decision, history, now, scan_id)
        return decision

    def _find(self, barcode: str, policy: Policy) -> tuple[Ticket | None, bool]:
        """The ticket for ``barcode`` and whether it was found without the server."""
        tickets = self.store.by_barcode(barcode)
        if tickets:
            return _prefer(tickets, policy.served_events), True
        if self._lookup is None:
            return None, True
        return self._find_online(barcode, _single(policy.served_events))

    def _find_online(self, barcode: str, event_id: str | None) -> tuple[Ticket | None, bool]:
        assert self._lookup is not None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(LOOKUP_WORKERS, thread_name_prefix="lookup")
        future = self._pool.submit(self._lookup, barcode, event_id, self.lookup_deadline)
        try:
            ticket = future.result(timeout=self.lookup_deadline)
        except FutureTimeout:
            log.info("online lookup passed its %.0f ms deadline; deciding offline",
                     self.lookup_deadline * 1000)
            return None, True
        except NotFound:
            return None, False
        except Exception as exc:  # the gate decides offline whatever the lookup did
            log.warning("online lookup failed; deciding offline: %s", exc)
            return None, True
        if ticket is None:
            return None, False
        if ticket.barcode != barcode:
            # Admitting the code read on another code's ticket would let any read in: the
            # store matches barcodes exactly, so must the server's answer.
            log.warning("online lookup failed; deciding offline: the server answered a "
                        "ticket of another barcode (ticket %s)", escape(ticket.id))
            return None, True
        if self._keeper is None:
            self._keeper = ThreadPoolExecutor(1, thread_name_prefix="keep-online")
        self._kept = self._keeper.submit(self._keep, ticket)
        return ticket, False

    def _keep(self, ticket: Ticket) -> None:
        try:
            self.store.upsert([ticket])
        except StoreError as exc:  # the next sync brings it; the scan was decided already
            log.warning("could not store the ticket found online: %s", exc)


def _no_orders() -> VenueOrders:
    return NO_ORDERS


def _prefer(tickets: list[Ticket], served: frozenset[str] | None) -> Ticket:
    """Several events may share a barcode: a ticket of a served event wins, a valid one
    before others, so a stale ticket elsewhere never shadows the right one."""
    return min(tickets, key=lambda t: (served is not None and t.event_id not in served,
                                       t.status != TicketStatus.VALID))


def _single(served: frozenset[str] | None) -> str | None:
    """The event a ticketless scan is filed under: the gate's only event, if it has one."""
    if served is not None and len(served) == 1:
        return next(iter(served))
    return None
