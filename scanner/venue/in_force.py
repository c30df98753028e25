"""The gate's book of venue commands: what it obeys, and the promise to know it first.

``offer(payload)`` takes a command as it came off the broker (retained, live, or from a
peer's anti-entropy answer): checks the supervisor's signature (``Verifier``), refuses one
already applied or older than its slot's newest (replay protection, ``VenueStore``),
keeps it durably, logs one line, and recomputes the gate's ``VenueOrders`` (``fold``),
which the decision reads through ``orders()``. Whatever else arrives on a command topic
is dropped, counted by cause (``dropped``, /metrics) and said in one log line.

**Before the next decision.** The worker that feeds the book holds ``settled`` clear from
the moment the broker hands it anything (a reconnect, a command) until that is applied,
and after a reconnect until the broker's retained commands and the peers' answers are in.
``orders()`` waits for that, at most ``settle_wait`` seconds once per unsettled spell: a
gate that comes back decides its first scan with the commands it missed, and a broker or a
peer that never answers costs one scan that wait, never more, never a lock-out.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from scanner.clock import utc_now
from scanner.decide.orders import NO_ORDERS, Mode, VenueOrders
from scanner.tickets import utc_iso
from scanner.venue.applied import Outcome, VenueStore
from scanner.venue.command import Command
from scanner.venue.fold import Place, fold
from scanner.venue.signing import Dropped, Verifier

log = logging.getLogger("scanner.venue")

SETTLE_WAIT = 1.5  # a LAN broker answers in milliseconds; this is for one that does not
# Drops are said one line each, up to this many per cause; then only counted (a flood of
# forged commands must not flood the log as well).
LOG_DROPS = 20


class CommandBook:
    def __init__(self, store: VenueStore, verifier: Verifier, place: Place, *,
                 settle_wait: float = SETTLE_WAIT,
                 wall: Callable[[], str] = lambda: utc_iso(utc_now()),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.verifier = verifier
        self.place = place
        self.settle_wait = settle_wait
        self._wall = wall
        self._monotonic = monotonic
        self.dropped: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # replays: already applied, superseded
        self.applied = 0
        self.settled = threading.Event()
        self.settled.set()
        self._waited = False  # a decision already waited out this unsettled spell
        self._lock = threading.Lock()
        self._listeners: list[Callable[[VenueOrders], object]] = []
        self._current: dict[tuple[str, str, str], tuple[Command, bytes]] = {}
        self._orders = NO_ORDERS
        self._last: Command | None = None
        self.load()

    # -- what the decision reads ---------------------------------------------------------

    def orders(self) -> VenueOrders:
        """What this gate obeys now, once what the broker handed over is applied."""
        if not self.settled.is_set() and not self._waited \
                and not self.settled.wait(self.settle_wait):
            self._waited = True
            log.warning("venue: commands not caught up after %.1f s; deciding with the "
                        "ones held", self.settle_wait)
        return self._orders

    def unsettle(self) -> None:
        """Something arrived that may change the orders: decisions wait for it."""
        self.settled.clear()

    def settle(self) -> None:
        self._waited = False
        self.settled.set()

    def on_change(self, listener: Callable[[VenueOrders], object]) -> None:
        """``listener(orders)`` after every change, on the feeding thread (the relay's
        egress hold, the kiosk's banner); it is called once now with the current orders."""
        self._listeners.append(listener)
        listener(self._orders)

    # -- feeding -------------------------------------------------------------------------

    def load(self) -> None:
        """The commands held in the journal database (a restart obeys them at once)."""
        with self._lock:
            held = self.store.current()
            self._current = {cmd.slot: (cmd, env) for cmd, env in held}
            self._last = held[-1][0] if held else None
            self._refold()

    def offer(self, payload: bytes, *, via: str = "broker") -> Outcome | None:
        """Check, keep and obey one command payload; None when it was dropped."""
        try:
            command = self.verifier.open(payload)
        except Dropped as drop:
            self._drop(drop, via)
            return None
        with self._lock:
            held = self._current.get(command.slot)
            if held is not None and held[0].id == command.id:
                outcome = Outcome.DUPLICATE  # retained copies come again on every reconnect
            elif held is not None and command.seq <= held[0].seq:
                outcome = Outcome.SUPERSEDED
            else:
                outcome = self.store.apply(command, payload, self._wall())
            if outcome is not Outcome.APPLIED:
                self.refused[outcome.value] += 1
                return outcome
            self._current[command.slot] = (command, payload)
            self.applied += 1
            self._last = command
            before = self._orders
            self._refold()
            after = self._orders
        log.warning("venue: applied %s (via %s)", command.describe(), via)
        if after != before:
            for listener in self._listeners:
                listener(after)
        return outcome

    def _refold(self) -> None:
        self._orders = fold((cmd for cmd, _env in self._current.values()), self.place)

    def _drop(self, drop: Dropped, via: str) -> None:
        self.dropped[drop.cause] += 1
        if self.dropped[drop.cause] <= LOG_DROPS:
            log.warning("venue: dropped a command message (via %s): %s%s", via, drop,
                        "; further drops of this cause are counted only"
                        if self.dropped[drop.cause] == LOG_DROPS else "")

    # -- what peers and people are told ----------------------------------------------------

    def envelopes(self) -> list[bytes]:
        """The signed newest command of every slot, for a peer that misses some."""
        with self._lock:
            return [env for _cmd, env in self._current.values()]

    def digest(self) -> dict[str, Any]:
        """What a peer compares to tell whether it holds the same commands: how many
        slots, the highest seq, and a hash of every (slot, seq)."""
        with self._lock:
            commands = [cmd for cmd, _env in self._current.values()]
        h = hashlib.sha256()
        for line in sorted(f"{c.issuer}\x1f{c.scope}\x1f{c.target}\x1f{c.seq}"
                           for c in commands):
            h.update(line.encode() + b"\n")
        return {"slots": len(commands), "top": max((c.seq for c in commands), default=0),
                "hash": h.hexdigest()[:32]}

    def state(self) -> dict[str, Any]:
        """For the kiosk's banner, gate status and /metrics."""
        orders, last = self._orders, self._last
        return {
            "mode": orders.mode.value,
            "blocked": len(orders.blocked),
            "applied": self.applied,
            "dropped": dict(self.dropped),
            "refused": dict(self.refused),
            "settled": self.settled.is_set(),
            "last": None if last is None else {
                "kind": last.kind.value, "scope": last.scope.value, "target": last.target,
                "seq": last.seq, "issued_at": last.issued_at, "reason": last.reason},
        }

    @property
    def egress(self) -> bool:
        return self._orders.mode is Mode.EGRESS
