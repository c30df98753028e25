"""Where a ticket is, and how many are in each zone, from every gate's granted scans.

A ticket's place follows its last granted scan in HLC order: entering zone Y puts it in Y
(and so in Y's parents), leaving Y puts it back in Y's parent, outside every zone when Y
has none. A zone's ``reset_at`` then moves everyone still placed in it (or below it) since
before its latest reset to its parent. A zone's count is the number of tickets placed in it
or in a zone inside it.

A scan is placed by its gate's zone (``zone_of``): the gates say which zone they are in
(``scanner.zones.escrow.Ledger``), and a gate not heard of yet is in the default zone.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from scanner.clock import last_moment
from scanner.config.zones import ZoneTree
from scanner.decide.model import Direction, PastScan, ScanHistory
from scanner.tickets import utc_iso

ZoneOf = Callable[[str], str]
RESET_GATE = "reset"      # the gate named by a presence cleared at a zone's reset_at
CHART_MINUTES = 6 * 60    # entries and exits per minute are kept this long


def place_after(tree: ZoneTree, zone: str, direction: str) -> str | None:
    """Where a granted scan at a gate of ``zone`` leaves the ticket."""
    return zone if direction == Direction.IN else tree.parent(zone)


def reset_marks(tree: ZoneTree, now: datetime, tz: tzinfo) -> dict[str, str]:
    """Each resetting zone's latest reset at or before ``now``, as ISO UTC text (which
    compares as the scan times do)."""
    return {z.id: utc_iso(last_moment(now, z.reset_at, tz))
            for z in tree if z.reset_at is not None}


def after_resets(tree: ZoneTree, place: str | None, since: str,
                 marks: Mapping[str, str]) -> str | None:
    """``place`` (taken at ``since``) after the resets in ``marks``: the outermost zone
    that reset since then sends the ticket to its parent."""
    if not marks:
        return place
    for zone in reversed(tree.path(place)):
        mark = marks.get(zone)
        if mark is not None and since < mark:
            return tree.parent(zone)
    return place


def zone_history(history: ScanHistory, tree: ZoneTree, zone_of: ZoneOf, zone: str,
                 marks: Mapping[str, str]) -> ScanHistory:
    """``history`` as seen from ``zone``: the anti-passback rules then run unchanged, per
    zone. A scan at a gate of ``zone`` itself is kept as it is; a scan elsewhere counts only
    if it took the ticket into or out of ``zone`` (entering the lounge from outside puts it
    in the stand too; entering another stand takes it out); a reset since the last scan
    that cleared ``zone`` is a check-out at the reset's time."""
    scans: list[PastScan] = []
    inside = False
    place: str | None = None
    last = ""
    for scan in history.scans:
        at = tree.resolve(zone_of(scan.gate_id))
        place = place_after(tree, at, scan.direction)
        now_inside = tree.within(place, zone)
        if at == zone:
            scans.append(scan)
        elif now_inside != inside:
            scans.append(PastScan(Direction.IN if now_inside else Direction.OUT,
                                  scan.scanned_at, scan.gate_id))
        inside, last = now_inside, scan.scanned_at
    if inside:
        for outer in reversed(tree.path(place)):  # the outermost reset that cleared it
            mark = marks.get(outer)
            if mark is not None and last < mark and tree.within(zone, outer):
                scans.append(PastScan(Direction.OUT, mark, RESET_GATE))
                break
    return ScanHistory(tuple(scans))


@dataclass(slots=True)
class LastScan:
    key: str          # HLC stamp (or a provisional one for an own scan not stamped yet)
    scan_id: str
    gate: str
    direction: str
    at: str           # scanned_at, ISO UTC
    provisional: bool = False  # an own decision the mesh has not stamped yet


class Occupancy:
    """Every ticket's last granted scan, and from them each zone's count, live.

    ``add`` takes any granted scan (a peer's record, this gate's own decision before the
    mesh stamps it, its stamped record after); only a scan later in HLC order than the one
    held moves the ticket. Counts follow each move; they are made anew from every ticket
    only after a new zone map or a reset (at a venue of 50,000 tickets, a few tens of
    milliseconds): the escrow asks for them every round.
    """

    def __init__(self, tree: ZoneTree, zone_of: ZoneOf, *, tz: tzinfo) -> None:
        self.tree = tree
        self._zone_of = zone_of
        self._tz = tz
        self._last: dict[str, LastScan] = {}      # what places the ticket now
        self._stamped: dict[str, LastScan] = {}   # the latest stamped scan of each ticket
        self._pending: dict[str, LastScan] = {}   # an own decision not stamped yet
        self._lock = threading.Lock()
        self._counts: dict[str, int] | None = None
        self._marks: dict[str, str] = {}
        # (zone, "YYYY-MM-DDTHH:MM") -> entries, exits
        self.entries: Counter[tuple[str, str]] = Counter()
        self.exits: Counter[tuple[str, str]] = Counter()

    def add(self, ticket: str | None, key: str, scan_id: str, gate: str, direction: str,
            at: str, *, provisional: bool = False) -> bool:
        """One granted scan; True if it moved the ticket.

        ``provisional``: this gate's own decision, counted before the mesh stamps it. It is
        the ticket's last scan until stamped (this gate decided it after everything it
        had heard); once stamped, the ticket's last scan is the latest stamp of all it
        holds, so a peer's later scan heard meanwhile is not lost."""
        if ticket is None:
            return False
        new = LastScan(key, scan_id, gate, direction, at, provisional)
        with self._lock:
            before = self._last.get(ticket)
            pending = self._pending.get(ticket)
            if provisional:
                self._pending[ticket] = new
            else:
                if pending is not None and pending.scan_id == scan_id:
                    del self._pending[ticket]
                best = self._stamped.get(ticket)
                if best is None or key > best.key:
                    self._stamped[ticket] = new
            after = self._pending.get(ticket) or self._stamped.get(ticket)
            if after is None or (before is not None and before.scan_id == after.scan_id):
                return False
            self._last[ticket] = after
            self._move(before, after)
            return True

    def changed_zones(self) -> None:
        """The gate-to-zone map changed: counts are recomputed when next asked."""
        with self._lock:
            self._counts = None

    def last(self, ticket: str) -> LastScan | None:
        """The ticket's last granted scan held (a copy)."""
        with self._lock:
            held = self._last.get(ticket)
            return None if held is None else LastScan(held.key, held.scan_id, held.gate,
                                                      held.direction, held.at,
                                                      held.provisional)

    def counts(self, now: datetime) -> dict[str, int]:
        """Tickets inside each zone (a zone's own and those inside its children)."""
        marks = reset_marks(self.tree, now, self._tz)
        with self._lock:
            if self._counts is not None and marks == self._marks:
                return dict(self._counts)
            counts = dict.fromkeys(self.tree.zones, 0)
            for last in self._last.values():
                for zone in self.tree.path(self._place(last, marks)):
                    counts[zone] += 1
            self._counts, self._marks = counts, marks
            return dict(counts)

    def place(self, ticket: str, now: datetime) -> str | None:
        marks = reset_marks(self.tree, now, self._tz)
        with self._lock:
            last = self._last.get(ticket)
            return None if last is None else self._place(last, marks)

    def rates(self, now: datetime, minutes: int = 60) -> dict[str, list[tuple[str, int, int]]]:
        """Per zone, the last ``minutes`` minutes as (minute, entries, exits), oldest first."""
        start = now - timedelta(minutes=minutes - 1)
        keys = [utc_iso(start + timedelta(minutes=i))[:16] for i in range(minutes)]
        with self._lock:
            return {z: [(k, self.entries[z, k], self.exits[z, k]) for k in keys]
                    for z in self.tree.zones}

    def prune(self, now: datetime) -> None:
        """Drop chart minutes older than ``CHART_MINUTES``."""
        oldest = utc_iso(now - timedelta(minutes=CHART_MINUTES))[:16]
        with self._lock:
            for counter in (self.entries, self.exits):
                for key in [k for k in counter if k[1] < oldest]:
                    del counter[key]

    def _place(self, last: LastScan, marks: Mapping[str, str]) -> str | None:
        place = place_after(self.tree, self.tree.resolve(self._zone_of(last.gate)),
                            last.direction)
        return after_resets(self.tree, place, last.at, marks)

    def _move(self, old: LastScan | None, new: LastScan) -> None:
        """A ticket's last scan went from ``old`` to ``new``: the chart's entries and exits,
        and the counts held, which were made with the same reset marks (``counts`` makes
        them anew when the marks move), so a scan costs its zones, not every ticket."""
        before = set(self.tree.path(None if old is None else self._place(old, self._marks)))
        after = set(self.tree.path(self._place(new, self._marks)))
        minute = new.at[:16]
        counts = self._counts
        for zone in after - before:
            self.entries[zone, minute] += 1
            if counts is not None:
                counts[zone] += 1
        for zone in before - after:
            self.exits[zone, minute] += 1
            if counts is not None:
                counts[zone] -= 1
