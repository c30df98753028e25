"""The venue as the control room sees it, from what every gate tells the mesh.

Fed by the observer (records, statuses, ledgers, health messages) and asked by the page,
``gate zones`` and ``/metrics``. Pure apart from its lock: times are passed in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from scanner.config.zones import ZoneTree
from scanner.mesh.message import Health, Record, Status
from scanner.tickets import parse_iso, utc_iso
from scanner.zones.book import ZoneBook
from scanner.zones.escrow import Ledger

LOG_SIZE = 200          # decisions on the page's log
CONFLICT_SIZE = 100
ALARM_SIZE = 100        # passage alarms and manual releases on the alarms panel
DENIALS_KEPT = 2000     # recent denials by scan id: what an override lifted
# Records the alarms panel lists: a turnstile forced or held open, a gate opened by hand,
# a steward's release a lockdown refused.
ALARM_REASONS = frozenset({"PASSAGE_FORCED", "PASSAGE_HELD", "MANUAL_RELEASE",
                           "RELEASE_REFUSED"})
CHART_MINUTES = 180     # entries and exits per minute over the last three hours
STALE = 10.0            # seconds without a word after which a gate is shown as lost


@dataclass
class GateSeen:
    gate: str
    online: bool = False
    seq: int = 0
    heard: str = ""                # when anything from it last arrived (observer's time)
    health: Health | None = None
    held: dict[str, int] = field(default_factory=dict)


class VenueView:
    def __init__(self, tree: ZoneTree, *, tz: tzinfo, name: str = "control") -> None:
        self.book = ZoneBook(tree, name, None, tz=tz, observer=True)
        self._gates: dict[str, GateSeen] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._conflicts: deque[dict[str, Any]] = deque(maxlen=CONFLICT_SIZE)
        self._conflict_count = 0
        self._alarms: deque[dict[str, Any]] = deque(maxlen=ALARM_SIZE)
        self._alarm_ids: set[str] = set()
        self._denials: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.version = 0   # one more on every change: what the page's streams watch
        self._watchers: list[Callable[[], None]] = []

    # -- fed by the observer ----------------------------------------------------------

    def record(self, record: Record, now: datetime) -> None:
        with self._lock:
            gate = self._gate(record.gate, now)
            gate.seq = max(gate.seq, record.seq)
            last = self.book.occupancy.last(record.ticket_id) if record.ticket_id else None
        new = self.book.record(record.scan_id, record.gate, record.hlc, record.ticket_id,
                               record.direction, record.result, record.scanned_at)
        with self._lock:
            if record.result == "OK" and new and last is not None and record.admission \
                    and last.direction == "IN" and last.gate != record.gate \
                    and last.key < record.hlc:
                self._conflict_count += 1
                self._conflicts.appendleft({
                    "ticket_id": record.ticket_id, "barcode": record.barcode,
                    "first": {"gate": last.gate, "at": last.at},
                    "second": {"gate": record.gate, "at": record.scanned_at}})
            if record.result != "OK" and record.role is None:
                self._denials[record.scan_id] = record.reason
                if len(self._denials) > DENIALS_KEPT:
                    self._denials.popitem(last=False)
            line = {"at": record.scanned_at, "gate": record.gate,
                    "zone": self.book.zone_of(record.gate), "direction": record.direction,
                    "result": record.result, "reason": record.reason,
                    "barcode": record.barcode, "scan_id": record.scan_id,
                    "who": _who(record, self._denials)}
            if new or record.result != "OK":
                self._log.appendleft(line)
            if record.reason in ALARM_REASONS and record.scan_id not in self._alarm_ids:
                if len(self._alarms) == ALARM_SIZE:
                    self._alarm_ids.discard(self._alarms[-1]["scan_id"])
                self._alarms.appendleft(line)
                self._alarm_ids.add(record.scan_id)
            self._touch()

    def status(self, status: Status, now: datetime) -> None:
        with self._lock:
            gate = self._gate(status.gate, now)
            gate.online, gate.seq = status.online, max(gate.seq, status.seq)
            self._touch()

    def ledger(self, ledger: Ledger, now: datetime) -> None:
        self.book.hear(ledger)
        with self._lock:
            self._gate(ledger.gate, now)
            self._touch()

    def health(self, health: Health, now: datetime) -> None:
        with self._lock:
            self._gate(health.gate, now).health = health
            self._touch()

    # -- asked by the page ------------------------------------------------------------

    def zones(self, now: datetime) -> list[dict[str, Any]]:
        """Every zone with its count and capacity: what ``gate zones --json`` prints."""
        return list(self.book.snapshot(now)["zones"])

    def snapshot(self, now: datetime, *, chart_minutes: int = CHART_MINUTES) -> dict[str, Any]:
        zones = self.zones(now)
        rates = self.book.occupancy.rates(now, chart_minutes)
        for zone in zones:
            zone["per_minute"] = [[m, i, o] for m, i, o in rates[zone["id"]]]
        with self._lock:
            gates = [self._gate_json(g, now) for g in sorted(self._gates.values(),
                                                             key=lambda g: g.gate)]
            return {"at": utc_iso(now), "version": self.version, "gates": gates,
                    "zones": zones, "conflicts": {"count": self._conflict_count,
                                                  "recent": list(self._conflicts)[:20]},
                    "alarms": list(self._alarms)[:20], "log": list(self._log)[:50]}

    # -- inside -----------------------------------------------------------------------

    def _gate(self, name: str, now: datetime) -> GateSeen:
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = GateSeen(name)
        gate.heard = utc_iso(now)
        return gate

    def watch(self, changed: Callable[[], None]) -> None:
        """Call ``changed`` (on the thread that changed the view, quickly) after every
        change."""
        with self._lock:
            self._watchers.append(changed)

    def _touch(self) -> None:
        self.version += 1
        for changed in self._watchers:
            changed()

    def _gate_json(self, gate: GateSeen, now: datetime) -> dict[str, Any]:
        health = gate.health
        ago = (now - parse_iso(gate.heard)).total_seconds() if gate.heard else None
        state = "online" if gate.online and ago is not None and ago < STALE else "alone"
        # Alarm codes the page words ("fire", "reader:<name>"); a lost reader is in readers.
        alarms = list(health.alarms) if health else []
        return {"gate": gate.gate, "state": state, "last_seen": gate.heard,
                "seen_ago": None if ago is None else round(ago, 1),
                "zone": self.book.zone_of(gate.gate), "seq": gate.seq,
                "version": health.version if health else None,
                "readers": dict(health.readers) if health else {},
                "queue": health.queue if health else None, "alarms": alarms}


def _who(record: Record, denials: OrderedDict[str, str]) -> dict[str, Any] | None:
    """Who made an entry and why, and the denial it lifted (None: a scan)."""
    if record.role is None:
        return None
    return {"role": record.role, "session": record.session, "why": record.why,
            "note": record.note, "answers": record.answers,
            "denied": denials.get(record.answers) if record.answers else None}
