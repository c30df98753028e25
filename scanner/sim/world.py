"""The simulated vivenu account: events, their tickets, and how they change.

Deterministic from the seed: the same seed gives the same events and base tickets, and the
same sequence of mutation calls gives the same changes (timestamps aside, which follow the
world clock). Thread-safe: the server's handler threads and the churn ticker share it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from scanner.sim.access_user import DeviceOptions, access_user_info
from scanner.sim.generate import (
    DEFAULT_EPOCH_MS,
    DEFAULT_SLOT_BASE_MS,
    DEFAULT_STEP_MS,
    FIRST,
    LAST,
    TAG_SELLER,
    TAG_USER,
    event_spec,
    iso_ms,
    locate,
    mix,
)
from scanner.sim.listing import EventTickets
from scanner.sim.scans import MIN_BARCODE, server_decision

# How many random draws a mutation makes to find a fitting ticket before giving up on it.
PICK_TRIES = 64
# What ``gate sim`` and ``gate demo`` may ask for: as many tickets as sync.max_event_tickets
# lets a gate take by default; far more would be generated for hours before serving.
MAX_TICKETS = 5_000_000
# mutate(): relative weights of each kind of change.
MUTATION_MIX = (("sell", 3), ("cancel", 2), ("change", 4), ("delete", 1))


class World:
    def __init__(self, seed: int = 7, events: int = 2, tickets_per_event: int = 300, *,
                 device: DeviceOptions | None = None, epoch_ms: int = DEFAULT_EPOCH_MS,
                 step_ms: int = DEFAULT_STEP_MS, slot_base_ms: int = DEFAULT_SLOT_BASE_MS,
                 skew: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        if events < 1 or tickets_per_event < 0 or step_ms < 1:
            raise ValueError("World: need events >= 1, tickets_per_event >= 0, step_ms >= 1")
        self.seed = seed
        self.salt = mix(seed)
        self.seller_id = f"sel-{mix(self.salt ^ TAG_SELLER):016x}"
        self.user_id = f"{mix(self.salt ^ TAG_USER):016x}{seed & 0xFFFFFFFF:08x}"
        self.device = device or DeviceOptions()
        # Seconds the server clock is ahead of this machine's: drives the Date header and
        # every updatedAt, so a device's clock-offset logic can be tested.
        self.skew = skew
        self._clock = clock
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._events: dict[str, EventTickets] = {}
        for index in range(events):
            spec = event_spec(seed, index, seller_id=self.seller_id, epoch_ms=epoch_ms,
                              step_ms=step_ms, slot_base_ms=slot_base_ms)
            self._events[spec.id] = EventTickets(spec, tickets_per_event)
        self._custom: dict[str, tuple[str, int]] = {}   # barcode given to sell() -> ticket
        self._last_ms = max(ev.spec.created_ms(ev.n_base) for ev in self._events.values())
        self._inside: set[str] = set()
        # Every scan uploaded through POST /scans, each with its "eventId" added.
        self.scans: list[dict[str, Any]] = []
        # Every POST /tickets/{barcode}/scan: {barcode, access, at}.
        self.scan_decisions: list[dict[str, Any]] = []
        # Barcodes that make POST /scans refuse the whole batch with 400.
        self.poison: set[str] = set()

    # -- read side ---------------------------------------------------------------------

    @property
    def event_ids(self) -> list[str]:
        return list(self._events)

    def events(self) -> list[dict[str, str]]:
        return [{"_id": ev.spec.id, "name": ev.spec.name} for ev in self._events.values()]

    def ticket_types(self, event_id: str) -> list[str]:
        return [kind.id for kind in self._events[event_id].spec.types]

    def now(self) -> float:
        """The server's clock in epoch seconds."""
        return self._clock() + self.skew

    def me(self) -> dict[str, Any]:
        return access_user_info(self.device, user_id=self.user_id, seller_id=self.seller_id,
                                event_ids=self.event_ids)

    def seller(self) -> dict[str, str]:
        return {"sellerId": self.seller_id}

    def page(self, event_id: str, *, top: int, skip: int, from_us: int | None = None,
             until_us: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """One page of the listing (bounds in epoch microseconds); KeyError: no event."""
        ev = self._events[event_id]
        with self._lock:
            refs, total = ev.page(skip, top, from_us, until_us)
        return ev.render(refs), total

    def current_tickets(self, event_id: str) -> Iterator[dict[str, Any]]:
        """The exact set the server lists now, in listing order."""
        ev = self._events[event_id]
        with self._lock:
            refs = list(ev.all_refs())
        return iter(ev.render(refs))

    def count(self, event_id: str) -> int:
        return self.page(event_id, top=0, skip=0)[1]

    def _locate(self, barcode: str) -> tuple[EventTickets, int] | None:
        """Where a barcode's ticket lives (it may since have been deleted)."""
        hit = self._custom.get(barcode)
        if hit is None:
            located = locate(barcode, self.salt)
            if located is None or located[0] >= len(self._events):
                return None
            hit = (self.event_ids[located[0]], located[1])
        return self._events[hit[0]], hit[1]

    def find(self, barcode: str, event_id: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            hit = self._found(barcode)
        if hit is None:
            return None
        doc = hit[2]
        return doc if event_id in (None, doc["eventId"]) else None

    def _found(self, barcode: str) -> tuple[EventTickets, int, dict[str, Any]] | None:
        """Where a barcode's ticket lives and the ticket, if it still exists (under the lock)."""
        place = self._locate(barcode)
        if place is None:
            return None
        ev, i = place
        doc = ev.get(i)
        if doc is None or doc["barcode"] != barcode:
            return None
        return ev, i, doc

    # -- mutations ---------------------------------------------------------------------

    def _stamp(self) -> int:
        """A timestamp later than every earlier one, so the listing order is total."""
        self._last_ms = max(int(self.now() * 1000), self._last_ms + 1)
        return self._last_ms

    def _pick(self, event_id: str | None,
              fits: Callable[[dict[str, Any]], bool] = lambda _doc: True,
              ) -> tuple[EventTickets, int, dict[str, Any]] | None:
        for _ in range(PICK_TRIES):
            ev = self._events[event_id or self._rng.choice(self.event_ids)]
            if ev.n_total == 0:
                continue
            i = self._rng.randrange(ev.n_total)
            doc = ev.get(i)
            if doc is not None and fits(doc):
                return ev, i, doc
        return None

    def _update(self, ev: EventTickets, i: int, doc: dict[str, Any],
                **fields: Any) -> dict[str, Any]:
        ms = self._stamp()
        new = {**doc, **fields, "updatedAt": iso_ms(ms)}
        ev.put(i, new, ms)
        return new

    def update(self, barcode: str, **fields: Any) -> dict[str, Any]:
        """Change one chosen ticket (e.g. ``status="INVALID"``); KeyError if unknown."""
        with self._lock:
            hit = self._found(barcode)
            if hit is None:
                raise KeyError(barcode)
            return self._update(*hit, **fields)

    def sell(self, event_id: str, n: int, *,
             barcodes: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Sell ``n`` new tickets; ``barcodes`` gives them chosen (odd) barcodes."""
        if barcodes is not None and len(barcodes) != n:
            raise ValueError("sell: need exactly one barcode per ticket")
        sold = []
        with self._lock:
            ev = self._events[event_id]
            for k in range(n):
                ms = self._stamp()
                i = ev.n_total
                doc = ev.spec.render(i, created_ms=ms)
                if barcodes is not None:
                    code = barcodes[k]
                    if len(code) < MIN_BARCODE or self.find(code) is not None:
                        raise ValueError(f"sell: barcode {code!r} is too short or taken")
                    doc["barcode"] = code
                    self._custom[code] = (event_id, i)
                ev.put(i, doc, ms)
                sold.append(doc)
        return sold

    def cancel(self, n: int, event_id: str | None = None) -> list[dict[str, Any]]:
        """Set ``n`` tickets that are not yet INVALID to INVALID."""
        return self._repeat(n, lambda: self._cancel_one(event_id))

    def change(self, n: int, event_id: str | None = None) -> list[dict[str, Any]]:
        """Move a seated ticket to another seat, or rename the holder of an unseated one."""
        return self._repeat(n, lambda: self._change_one(event_id))

    def delete(self, n: int, event_id: str | None = None) -> list[dict[str, Any]]:
        """Hard-delete ``n`` tickets; returns them as they were."""
        return self._repeat(n, lambda: self._delete_one(event_id))

    def mutate(self, n: int, event_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """``n`` random changes of every kind: (kind, ticket after, or before a delete)."""
        kinds = [kind for kind, _ in MUTATION_MIX]
        weights = [weight for _, weight in MUTATION_MIX]
        done: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            for _ in range(n):
                kind = self._rng.choices(kinds, weights)[0]
                if kind == "sell":
                    target = event_id or self._rng.choice(self.event_ids)
                    docs = self.sell(target, 1)
                else:
                    docs = getattr(self, kind)(1, event_id)
                done.extend((kind, doc) for doc in docs)
        return done

    def _repeat(self, n: int, one: Callable[[], dict[str, Any] | None]) -> list[dict[str, Any]]:
        with self._lock:
            results = (one() for _ in range(n))
            return [doc for doc in results if doc is not None]

    def _cancel_one(self, event_id: str | None) -> dict[str, Any] | None:
        picked = self._pick(event_id, lambda doc: doc.get("status") != "INVALID")
        return None if picked is None else self._update(*picked, status="INVALID")

    def _change_one(self, event_id: str | None) -> dict[str, Any] | None:
        picked = self._pick(event_id)
        if picked is None:
            return None
        doc = picked[2]
        if "seat" in doc:
            seat = str(1 + (int(doc["seat"]) + self._rng.randrange(1, 40)) % 40)
            return self._update(*picked, seat=seat)
        name = f"{self._rng.choice(FIRST)} {self._rng.choice(LAST)}"
        return self._update(*picked, name=name)

    def _delete_one(self, event_id: str | None) -> dict[str, Any] | None:
        picked = self._pick(event_id)
        if picked is None:
            return None
        ev, i, doc = picked
        ev.remove(i)
        return doc

    # -- scans -------------------------------------------------------------------------

    def poisoned(self, scans: list[dict[str, Any]]) -> int | None:
        """Index of the first scan whose barcode is poisoned, if any."""
        return next((k for k, s in enumerate(scans) if s.get("barcode") in self.poison), None)

    def record_scans(self, event_id: str, scans: list[dict[str, Any]]) -> None:
        with self._lock:
            for scan in scans:
                self.scans.append({**scan, "eventId": event_id})
                if scan["type"] == "OK":
                    (self._inside.add if scan["direction"] == "IN"
                     else self._inside.discard)(scan["barcode"])

    def scan(self, barcode: str) -> dict[str, Any] | None:
        """Decide and record a live scan; None if the barcode is unknown."""
        with self._lock:
            ticket = self.find(barcode)
            if ticket is None:
                return None
            access = server_decision(ticket, barcode in self._inside,
                                     self.device.include_details_required)
            if access == "GRANTED":
                self._inside.add(barcode)
            self.scan_decisions.append({"barcode": barcode, "access": access,
                                        "at": iso_ms(int(self.now() * 1000))})
        return {"access": access, "ticket": ticket}
