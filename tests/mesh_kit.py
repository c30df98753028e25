"""A real mosquitto on a free loopback port, and gates wired to it (no tests here).

    Broker       scanner.mesh.localbroker with the shipped ACL and a password file;
                 ``stop()`` kills it (a partition), ``start()`` brings it back
    MeshGate     a real Gate (SQLite file, ticket store, journal), its MeshStore, a Link,
                 and a Gatekeeper deciding from the merged history
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_journal_kit import make_gate, make_ticket

from scanner.config import Secret
from scanner.decide.model import Direction
from scanner.gatekeeper import CheckResult, Gatekeeper
from scanner.mesh.hlc import HybridClock, wall_ms
from scanner.mesh.link import Link, MeshSettings
from scanner.mesh.localbroker import BrokerMissing, LocalBroker, password
from scanner.mesh.presence import MergedHistory
from scanner.mesh.store import MeshStore

KEY = b"venue-key-for-tests-0123456789"


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Broker(LocalBroker):
    """The shipped ACL and a password file for ``users``; skips when mosquitto is absent."""

    def __init__(self, folder: Path, users: list[str], *, shipped: bool = False) -> None:
        try:
            super().__init__(folder, users, shipped=shipped)
        except BrokerMissing:
            pytest.skip("mosquitto is not installed (deploy/bootstrap.sh --test installs it)")

    def settings(self, user: str, **kw: Any) -> MeshSettings:
        return MeshSettings(url=self.url, key=KEY, username=user,
                            password=Secret(password(user)), reconnect_min=1,
                            reconnect_max=1, anti_entropy_interval=1.0, **kw)


class MeshGate:
    """One gate of the venue: its own SQLite file, journal, mesh store and link."""

    def __init__(self, folder: Path, gate_id: str, broker: Broker, *, tickets: int = 5,
                 physical: Callable[[], int] = wall_ms, key: bytes = KEY,
                 clock: Any = None, event: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.gate_id = gate_id
        kw: dict[str, Any] = {"clock": clock} if clock else {}
        if event:
            kw["events"] = (event,)
        self.gate = make_gate(folder, gate_id=gate_id, **kw)
        self.gate.store.upsert([make_ticket(n, **({"event": event} if event else {}))
                                for n in range(1, tickets + 1)])
        self.mesh = MeshStore(self.gate.journal_engine, gate_id)
        self.history = MergedHistory(self.gate.journal, self.mesh)
        settings = broker.settings(gate_id)
        if key != KEY:
            settings = MeshSettings(**{**_fields(settings), "key": key})
        self.link = Link(settings, self.mesh, clock=HybridClock(gate_id, physical=physical))
        self.keeper = Gatekeeper(self.gate.store, self.gate.journal, self.gate.policy_source,
                                 history=self.history, journaled=self.link.notify,
                                 gate_id=gate_id, clock=self.gate.clock)

    def start(self) -> MeshGate:
        self.link.start()
        assert wait_for(self.link.connected.is_set), f"{self.gate_id} did not connect"
        return self

    def check(self, n: int, direction: Direction = Direction.IN) -> CheckResult:
        result = self.keeper.check(make_ticket(n).barcode, direction)
        self.link.notify()
        return result

    def scan_ids(self) -> set[str]:
        return {r.scan_id for r in self.mesh.records()}

    def close(self) -> None:
        self.link.close()
        self.keeper.close()
        self.gate.close()


def _fields(settings: MeshSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in MeshSettings.__slots__}  # type: ignore[attr-defined]
