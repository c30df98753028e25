"""The control room's seat on the mesh: it hears every gate and decides nothing.

It subscribes to every gate's scans, statuses, ledgers and health, and asks each origin for
the records it misses (``gates/<name>/replay/<origin>``, under its own name as the ACL
demands), exactly as a gate does; it publishes nothing else: no scans, no status, no
ledger, no uploads. What it hears goes into a ``VenueView``. Nothing is kept on disk: a
control room started late asks the gates for their whole history.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from scanner.clock import utc_now
from scanner.control.view import VenueView
from scanner.mesh.broker import Broker, Connected, Inbox, Lost, Received
from scanner.mesh.broker_settings import MeshSettings
from scanner.mesh.message import (
    MAX_RANGES,
    PREFIX,
    REPLAYED,
    SCANS,
    STATUS,
    Batch,
    Codec,
    Health,
    ReplayRequest,
    Status,
    replay_topic,
)
from scanner.mesh.peer_journal import missing_ranges
from scanner.mesh.zoning import FILTERS
from scanner.run.worker import SessionWorker, Stage
from scanner.zones.escrow import Ledger

log = logging.getLogger("scanner.control")
TICK = 0.25
ASK_AGAIN = 5.0     # a range asked for and still missing is asked for again after this


@dataclass
class _Origin:
    announced: int = 0
    complete: int = 0                       # every number up to this one is held
    above: set[int] = field(default_factory=set)  # held beyond ``complete``
    asked_at: float = -1e9

    def hold(self, seq: int) -> None:
        if seq > self.complete:
            self.above.add(seq)
            while self.complete + 1 in self.above:
                self.complete += 1
                self.above.discard(self.complete)

    def ranges(self) -> list[tuple[int, int]]:
        held = [(s, s) for s in sorted(self.above)]
        return missing_ranges(held, self.announced, after=self.complete)


class Observer(SessionWorker):
    """The worker: ``view`` is fed; ``name`` is the control room's mesh user."""

    yields_cpu = False  # hearing the venue is the control room's whole work

    def __init__(self, settings: MeshSettings, broker: Broker, view: VenueView, *,
                 name: str = "control", clock: Callable[[], datetime] = utc_now,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__("observer", heartbeat_timeout=10.0, stage=Stage.BACKGROUND,
                         clock=monotonic)
        self.name = name
        self.broker = broker
        self.view = view
        self.codec = Codec(settings.key)
        self.connected = threading.Event()
        self.inbox = Inbox()
        self._wall = clock
        self._origins: dict[str, _Origin] = {}

    def state(self) -> tuple[bool, list[str]]:
        if self.connected.is_set():
            return True, []
        return False, ["the control room does not reach the venue's broker"]

    def open(self) -> None:
        self.broker.subscribe(f"{PREFIX}/+/{SCANS}", f"{PREFIX}/+/{STATUS}", *FILTERS,
                              f"{PREFIX}/+/{REPLAYED}/{self.name}")
        self.broker.connect(self.inbox)

    def shut(self) -> None:
        self.broker.close(timeout=1.0)
        self.connected.clear()

    def interrupt(self) -> None:
        self.inbox.post(None)

    def step(self, wait: float = TICK) -> None:
        try:
            event = self.inbox.get(timeout=wait)
            while True:
                self._event(event)
                event = self.inbox.get(timeout=0)
        except queue.Empty:
            pass
        if self.connected.is_set():
            self._ask()

    def _event(self, event: object) -> None:
        if isinstance(event, Connected):
            self.connected.set()
            for origin in self._origins.values():
                origin.asked_at = -1e9
        elif isinstance(event, Lost):
            self.connected.clear()
        elif isinstance(event, Received):
            message = self.codec.decode(event.topic, event.payload)
            now = self._wall()
            if isinstance(message, Batch):
                origin = self._origins.setdefault(message.gate, _Origin())
                for record in message.records:
                    origin.hold(record.seq)
                    origin.announced = max(origin.announced, record.seq)
                    self.view.record(record, now)
            elif isinstance(message, Status):
                origin = self._origins.setdefault(message.gate, _Origin())
                origin.announced = max(origin.announced, message.seq)
                self.view.status(message, now)
            elif isinstance(message, Ledger):
                self.view.ledger(message, now)
            elif isinstance(message, Health):
                self.view.health(message, now)
            elif isinstance(message, ReplayRequest):
                pass  # not subscribed: the observer replays nothing

    def _ask(self) -> None:
        now = self.clock()
        for gate, origin in self._origins.items():
            if origin.announced <= origin.complete or now - origin.asked_at < ASK_AGAIN:
                continue
            gaps = origin.ranges()
            if gaps:
                origin.asked_at = now
                request = ReplayRequest(self.name, gate, tuple(gaps[:MAX_RANGES]))
                self.broker.publish(replay_topic(self.name, gate), self.codec.replay(request))
