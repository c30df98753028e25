"""A real mosquitto on a free loopback port or an in-memory hub, and gates wired to either
(no tests here).

    Broker       scanner.mesh.localbroker with the shipped ACL and a password file;
                 ``stop()`` kills it (a partition), ``start()`` brings it back
    CutProxy     a TCP relay between one client and mosquitto: ``cut()`` severs that
                 client alone, ``mend()`` lets it connect again
    MeshGate     a real Gate (SQLite file, ticket store, journal), its MeshStore, a Link
                 over paho (a Broker) or over a MemoryHub, and a Gatekeeper deciding from
                 the merged history
    Rounds       steps the links of gates on a MemoryHub in turn on a clock of its own:
                 the protocol without threads or sleeps
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from kits.gate import build_gate
from kits.journal import make_ticket
from scanner.config import Secret
from scanner.decide.model import Direction
from scanner.gatekeeper import CheckResult, Gatekeeper
from scanner.mesh.broker import Broker as BrokerSeam
from scanner.mesh.broker_settings import MeshSettings
from scanner.mesh.history import MergedHistory
from scanner.mesh.hlc import HybridClock, wall_ms
from scanner.mesh.link import TICK, Link
from scanner.mesh.localbroker import BrokerMissing, LocalBroker, password
from scanner.mesh.memory_broker import MemoryHub
from scanner.mesh.message import Codec
from scanner.mesh.paho_broker import PahoBroker
from scanner.mesh.peer_journal import MeshStore
from scanner.mesh.zoning import ZoneMesh
from scanner.zones.book import ZoneBook

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


class CutProxy:
    """A TCP relay between one client and the broker; ``cut()`` severs that client's link
    (the broker stays up for everyone else), ``mend()`` lets it connect again."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # the broker is down: refused, as it would be without a relay
                client.close()
                continue
            self.pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):  # shutdown: a close alone waits for the other pump's recv
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        self.open.clear()
        for pair in self.pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        self.pairs.clear()

    def mend(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


class MeshGate:
    """One gate of the venue: its own SQLite file, journal, mesh store and link. ``broker``
    is a mosquitto (the link speaks MQTT to it, at ``url`` if given) or a MemoryHub;
    ``gate``: more of the configuration (``build_gate``'s overrides, e.g. a policy)."""

    def __init__(self, folder: Path, gate_id: str, broker: Broker | MemoryHub, *,
                 tickets: int = 5, physical: Callable[[], int] = wall_ms, key: bytes = KEY,
                 clock: Any = None, event: str | None = None, url: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 zones: ZoneBook | None = None, **gate: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.gate_id = gate_id
        kw: dict[str, Any] = {"clock": clock} if clock else {}
        kw.update(gate)  # the gate's configuration (build_gate's overrides)
        if event:
            kw["events"] = (event,)
        self.gate = build_gate(folder, gate_id=gate_id, **kw)
        self.gate.store.upsert([make_ticket(n, **({"event": event} if event else {}))
                                for n in range(1, tickets + 1)])
        self.mesh = MeshStore(self.gate.journal_engine, gate_id)
        self.history = MergedHistory(self.gate.journal, self.mesh)
        client: BrokerSeam
        if isinstance(broker, MemoryHub):
            settings = MeshSettings(url="mqtt://memory.invalid", key=key,
                                    anti_entropy_interval=1.0)
            client = broker.broker(f"gate-{gate_id}")
        else:
            settings = dataclasses.replace(broker.settings(gate_id), key=key,
                                           url=url or broker.url)
            client = PahoBroker(settings, f"gate-{gate_id}")
        self.zones = zones  # a zone book: the link and the gatekeeper use it
        zoning = None if zones is None else ZoneMesh(
            zones, Codec(key), wall=self.gate.clock, save=self.mesh.save_ledgers)
        self.link = Link(settings, self.mesh, client, monotonic=monotonic, zones=zoning,
                         clock=HybridClock(gate_id, physical=physical))
        self.keeper = Gatekeeper(self.gate.store, self.gate.journal, self.gate.policy_source,
                                 history=self.history, journaled=self.link.notify,
                                 gate_id=gate_id, clock=self.gate.clock, zones=zones)

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


class Rounds:
    """Gates on a MemoryHub, driven by hand: ``open()`` connects their links, ``until()``
    steps each link in turn (one round each, then the shared clock moves a tick) until a
    condition holds. Nothing waits on a thread or a timer: what a link does is the same
    whatever the machine's load."""

    def __init__(self) -> None:
        self.hub = MemoryHub()
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def gate(self, folder: Path, gate_id: str, **kw: Any) -> MeshGate:
        """A gate whose link and HLC both run on the rounds' clock."""
        return MeshGate(folder, gate_id, self.hub, monotonic=self.clock,
                        physical=lambda: int(self.now * 1000), **kw)

    def open(self, *gates: MeshGate) -> None:
        for g in gates:
            g.link.open()

    def until(self, gates: Iterable[MeshGate], done: Callable[[], bool],
              rounds: int = 400) -> int:
        """Rounds stepped until ``done()`` (asserted within ``rounds``); how many."""
        gates = list(gates)
        for n in range(rounds):
            if done():
                return n
            for g in gates:
                g.link.step(0)
            self.now += TICK
        assert done(), f"not done after {rounds} rounds"
        return rounds
