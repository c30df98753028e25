"""Gates that obey venue commands, and a supervisor that issues them (no tests here).

    VenueGate    a real Gate (SQLite store and journal) with ``[mesh] supervisor_key``, its
                 ``zone`` among the venue's ``ZONES``: its CommandBook and Gatekeeper from
                 the composition root, and a VenueWorker over a MemoryHub member or a
                 mosquitto (paho)
    Supervisor   a key pair made by ``gate venue keygen``'s code, issuing through a hub
                 member or paho
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kits.gate import build_gate
from kits.journal import make_ticket
from kits.mesh import Broker
from scanner.config import MeshConfig
from scanner.decide.model import Direction
from scanner.gatekeeper import CheckResult
from scanner.mesh.broker import Broker as BrokerSeam
from scanner.mesh.memory_broker import MemoryHub
from scanner.mesh.paho_broker import PahoBroker
from scanner.venue.channel import VenueWorker
from scanner.venue.command import Command, Kind, Scope
from scanner.venue.issue import issue
from scanner.venue.signing import Signer, keygen

SUPERVISOR = "supervisor"  # the broker user the shipped ACL lets write venue commands
# The venue's [[zones]]: north holds the stand, which holds the lounge.
ZONES = [{"id": "grounds"}, {"id": "north", "parent": "grounds"},
         {"id": "stand", "parent": "north"}, {"id": "lounge", "parent": "stand"},
         {"id": "south", "parent": "grounds"}, {"id": "west", "parent": "grounds"}]


class Supervisor:
    def __init__(self, folder: Path) -> None:
        self.private, self.public = keygen(folder)
        self.signer = Signer(self.private)

    def issue(self, broker: MemoryHub | Broker, kind: Kind, scope: Scope = Scope.VENUE,
              target: str = "", reason: str = "") -> Command:
        client: BrokerSeam
        if isinstance(broker, MemoryHub):
            client = broker.broker(f"supervisor-{kind}-{target}")
        else:
            client = PahoBroker(broker.settings(SUPERVISOR), f"supervisor-{kind}")
        return issue(client, self.signer, kind, scope, target, reason=reason)


class VenueGate:
    def __init__(self, folder: Path, gate_id: str, supervisor_key: Path,
                 broker: MemoryHub | Broker, *, zone: str = "", tickets: int = 3,
                 settle_wait: float = 10.0, url: str | None = None, **gate: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.gate_id = gate_id
        self.gate = build_gate(
            folder, **{"gate_id": gate_id, "zone": zone, "zones": ZONES,
                       "mesh": MeshConfig(supervisor_key=str(supervisor_key)), **gate})
        self.gate.store.upsert([make_ticket(n) for n in range(1, tickets + 1)])
        book = self.gate.venue_book
        assert book is not None
        self.book = book
        book.settle_wait = settle_wait  # a loaded machine must not turn a wait into a miss
        client: BrokerSeam
        if isinstance(broker, MemoryHub):
            self.client_id = f"gate-{gate_id}-venue"
            client = broker.broker(self.client_id)
        else:
            settings = dataclasses.replace(broker.settings(gate_id), url=url or broker.url)
            client = PahoBroker(settings, f"gate-{gate_id}-venue")
        self.worker = VenueWorker(book, client, gate_id)

    def check(self, n: int, direction: Direction = Direction.IN) -> CheckResult:
        return self.gate.gatekeeper.check(make_ticket(n).barcode, direction)

    def settle(self, rounds: int = 50) -> None:
        """Step the worker by hand until the book is settled (no thread)."""
        for _ in range(rounds):
            self.worker.step(0)
            if self.book.settled.is_set():
                return
        raise AssertionError(f"{self.gate_id} did not settle")

    def close(self) -> None:
        self.worker.close()
        self.gate.close()
