"""An in-process gate with its kiosk, for the kiosk tests (no tests here); the ``kg``
fixture is one over the test's simulator, closed after the test.

A real ``Gate`` (SQLite files in tmp_path) synced from the simulator, an ``ActStage`` on
gpiozero's MockFactory pins, and the kiosk server on loopback. "Reads" go through the same
``Gatekeeper.check`` then ``ActStage.submit`` that a reader pipeline uses. A sync loop
reports the API's outcome to the online badge, as the daemon's sync worker will.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kits.gate import build_gate
from kits.gpio import make
from kits.journal import api_config
from scanner.act import ActStage
from scanner.app.kiosk import from_gate
from scanner.clock import utc_now
from scanner.config import LookupConfig, PolicyConfig
from scanner.decide.model import Direction
from scanner.decide.orders import VenueOrders
from scanner.errors import GateError
from scanner.gatekeeper import CheckResult
from scanner.kiosk import KioskServer, Reachability, WebOptions
from scanner.kiosk.auth import Lockout, write_pin_file
from scanner.netrules import free_port
from scanner.run.lane import Lane
from scanner.sim import SimServer, World
from scanner.supervise import Desk, Holds

HEARTBEAT_MAX_AGE = 2.0
SYNC_EVERY = 0.5
# scrypt's cost for the PINs these tests set, in place of SCRYPT_N (about 50 ms of CPU per
# hash here, and a test logs in and sets PINs several times). The pin_file line keeps its
# cost and a PIN is checked at the cost its line names, so such a PIN works as set-pin's
# does; set-pin's own test and the tests flooding the page with PINs keep the real cost.
QUICK_PIN_COST = 16


def quick_pin_file(path: str | Path, pin: str) -> None:
    """``write_pin_file`` at QUICK_PIN_COST."""
    write_pin_file(path, pin, n=QUICK_PIN_COST)


class KioskGate:
    def __init__(self, tmp_path: Path, sim: SimServer, web: WebOptions | None = None, *,
                 lockout: Lockout | None = None, policy: PolicyConfig | None = None,
                 pins: dict[str, Any] | None = None, held_after: float = 30.0,
                 orders: Callable[[], VenueOrders] | None = None) -> None:
        self.sim = sim
        self.lockout = lockout
        # Every event, the real clock and the default online lookup, as a gate run has.
        self.gate = build_gate(tmp_path, events=(), lookup=LookupConfig(), clock=utc_now,
                               api=api_config(sim, retries=0, connect_timeout=0.5),
                               policy=policy or PolicyConfig())
        self.gate.syncer.run_once()
        self.outputs = make(**(pins or {}))
        # As ``gate run`` wires them: the desk journals the stage's alarms, holds tickets
        # between lane and stage, and takes the wired confirm button.
        self.stage = ActStage(self.outputs, self.gate.journal,
                              alarms=lambda reason: self.desk.alarm(reason),
                              passage_held_after=held_after)
        self.desk = Desk(self.gate.journal, self.gate.gatekeeper, self.stage.submit,
                         Holds(self.gate.config.policy.confirm_timeout),
                         release=self.stage.release, orders=orders)
        self.outputs.when_confirm = self.desk.button
        self.stage.start()
        self.link = Reachability()
        self.link.reached()
        self.web = web or WebOptions(host="127.0.0.1", port=free_port(),
                                     pin_file=str(tmp_path / "kiosk.pin"))
        self.kiosk = self.new_kiosk()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._busy = threading.Lock()  # held through one sync and its report
        self._syncing = threading.Thread(target=self._sync_loop, daemon=True)
        self._syncing.start()

    def new_kiosk(self) -> KioskServer:
        kiosk = from_gate(self.gate, self.stage, self.web, health=self.health,
                          online=self.link, clock_ok=lambda: True, desk=self.desk)
        if self.lockout is not None:  # the same parts, a lockout with its own idea of local
            kiosk = KioskServer(self.web, kiosk.parts, lockout=self.lockout)
        return kiosk.start()

    def restart_kiosk(self) -> None:
        """Stop the server and start a new one on the same port, as a restart would."""
        self.kiosk.stop()
        self.kiosk = self.new_kiosk()

    def health(self) -> tuple[bool, list[str]]:
        now = time.monotonic()
        reasons = [f"{name}: heartbeat {now - beat:.1f} s old"
                   for name, beat in (("act", self.stage.heartbeat),
                                      ("kiosk", self.kiosk.heartbeat))
                   if now - beat > HEARTBEAT_MAX_AGE]
        if not self.stage.serving:
            reasons.append("act: not running")
        return not reasons, reasons

    def _sync_loop(self) -> None:
        while not self._stop.wait(SYNC_EVERY):
            with self._busy:
                if self._paused.is_set():
                    continue
                try:
                    self.gate.syncer.run_once()
                except GateError:
                    self.link.failed()
                else:
                    self.link.reached()

    def pause_sync(self, paused: bool) -> None:
        """Hold the sync loop (and so the online badge) where a test put it."""
        if paused:
            self._paused.set()
            with self._busy:  # a sync under way reports before the test's own word
                pass
        else:
            self._paused.clear()

    @property
    def url(self) -> str:
        return self.kiosk.url

    def read(self, barcode: str, direction: Direction = Direction.IN) -> CheckResult:
        """A reader's path: decide and journal, then hand to the act stage."""
        result = self.gate.gatekeeper.check(barcode, direction)
        assert self.stage.submit(result)
        return result

    def valid_barcodes(self, n: int) -> list[str]:
        world: World = self.sim.world
        docs = [doc for event_id in world.event_ids for doc in world.current_tickets(event_id)
                if doc.get("status", "VALID") == "VALID" and not doc.get("slotStartTime")
                and doc.get("name")]
        assert len(docs) >= n, f"the world has only {len(docs)} plain valid tickets"
        return [doc["barcode"] for doc in docs[:n]]

    def __enter__(self) -> KioskGate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._syncing.join(5)
        self.kiosk.stop()
        self.stage.stop(5)
        self.outputs.close()
        self.gate.close()


@contextmanager
def running_lane(kg: KioskGate) -> Iterator[Lane]:
    """The turnstile's lane, submitting through the desk as ``gate run`` wires it."""
    worker = Lane("main", kg.gate.gatekeeper, kg.desk.submit, heartbeat_timeout=30)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def kg(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    with KioskGate(tmp_path, sim_server) as gate:
        yield gate
