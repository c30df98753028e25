"""The link's part for zones: ledgers and health messages in, the gate's own out.

Every gate publishes its ledger (``scanner.zones.escrow``) retained on
``gates/<gate>/ledger`` whenever it changes, saved first: a ledger's counts only grow, and
one forgotten in a restart could give away the same places twice. It publishes its health
(readers, upload queue, version, alarms) retained on ``gates/<gate>/health`` every
``HEALTH_INTERVAL`` for the control room. Records, own and peers', feed the zone book.
The control room runs the same part as an observer: it hears, and publishes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from datetime import datetime

from scanner.mesh.message import (
    HEALTH,
    LEDGER,
    PREFIX,
    Codec,
    Health,
    Record,
    health_topic,
    ledger_topic,
)
from scanner.zones.book import ZoneBook
from scanner.zones.escrow import Ledger

log = logging.getLogger("scanner.mesh")

FILTERS = (f"{PREFIX}/+/{LEDGER}", f"{PREFIX}/+/{HEALTH}")  # the control room's
# A gate's: the ledgers only. Health is for the control room; every gate hearing every
# other's every few seconds was most of a large venue's messages, each checked and dropped.
GATE_FILTERS = (f"{PREFIX}/+/{LEDGER}",)
READY_AFTER = 1.0        # connected this long, a gate without a saved ledger has heard its own
HEALTH_INTERVAL = 2.0    # seconds between health messages (the control room's "last seen")
ROUND_INTERVAL = 0.25    # seconds between the minter's escrow rounds: places freed reach
# the gates soon. Another gate's round only hands back what is above its target, which
# moves seldom; each round sums every ledger, a venue gate's largest idle cost.
HAND_BACK_INTERVAL = 2.0

Publish = Callable[..., None]   # (topic, payload, *, retain) as Broker.publish


class ZoneMesh:
    """``book`` is the gate's zone book; ``save`` keeps its ledgers (the own one first)
    durably before the own one is published (None: the observer, which publishes nothing);
    ``health`` says what the gate's health message holds now (None: no health messages);
    ``wall`` is the time."""

    def __init__(self, book: ZoneBook, codec: Codec, *, wall: Callable[[], datetime],
                 save: Callable[[list[Ledger]], None] | None = None,
                 health: Callable[[], Health] | None = None,
                 on_health: Callable[[Health], None] | None = None,
                 on_ledger: Callable[[Ledger], None] | None = None) -> None:
        self.book = book
        self.codec = codec
        self._wall = wall
        self._save = save
        self.health = health
        self._on_health = on_health
        self._on_ledger = on_ledger
        self._health_at = -1e9
        self._round_at = -1e9
        self._published: int | None = None   # the own ledger version the broker has
        self._saved: int | None = None       # the own ledger version saved
        self._connected_at: float | None = None

    def heard(self, message: Ledger | Health) -> None:
        if isinstance(message, Health):
            if self._on_health is not None:
                self._on_health(message)
            return
        if self.book.hear(message) and message.gate == self.book.gate \
                and not self.book.observer:
            log.warning("mesh: the broker holds a newer ledger of this gate (version %d) than "
                        "its database: taken back; the places it held are not used",
                        message.version)
            self._published = self._saved = None
        if self._on_ledger is not None:
            self._on_ledger(message)

    def records(self, records: Iterable[Record]) -> None:
        """Records heard or stamped: the book counts the granted ones."""
        book = self.book
        for r in records:
            if r.result == "OK":
                book.record(r.scan_id, r.gate, r.hlc, r.ticket_id, r.direction, r.result,
                            r.scanned_at)

    def connected(self) -> None:
        """A new connection: the own ledger is published again (the broker may have lost
        its retained copy), and health at once."""
        self._published = None
        self._health_at = -1e9
        self._connected_at = None

    def round(self, publish: Publish, now: float, online: Collection[str], *,
              connected: bool) -> None:
        """What is due: an escrow round (and the ledger it changed), health."""
        if self._save is None:
            return
        if connected and self._connected_at is None:
            self._connected_at = now
        if not self.book.ready and self._connected_at is not None \
                and now - self._connected_at >= READY_AFTER:
            self.book.ready = True
        interval = ROUND_INTERVAL if self.book.minter == self.book.gate else HAND_BACK_INTERVAL
        if now - self._round_at >= interval:
            self._round_at = now
            self.book.tick(self._wall(), online if connected else ())
        ledger = self.book.ledger()
        if ledger is not None and ledger.version != self._saved:
            # Durable before anyone can count on it; a failed save is tried again next
            # round, and nothing unsaved is published.
            others = [x for g, x in self.book.ledgers().items() if g != ledger.gate]
            self._save([ledger, *others])
            self._saved = ledger.version
        if connected and ledger is not None and ledger.version != self._published:
            publish(ledger_topic(self.book.gate), self.codec.ledger(ledger), retain=True)
            self._published = ledger.version
        if connected and self.health is not None and now - self._health_at >= HEALTH_INTERVAL:
            self._health_at = now
            publish(health_topic(self.book.gate), self.codec.health(self.health()),
                    retain=True)
