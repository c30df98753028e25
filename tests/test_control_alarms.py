"""Alarms and overrides on the control room's page, in Debian's Chromium: a gate on a real
mosquitto with its turnstile on gpiozero's MockFactory and its kiosk on loopback; the
control room's observer and page hear it through the mesh."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from kits import loopback
from kits.browser import needs_chromium
from kits.gpio import PASSAGE, make
from kits.kiosk import free_port, quick_pin_file
from kits.mesh import Broker, MeshGate, wait_for
from kits.waiting import within_a_second

from scanner.act import ActStage
from scanner.app.kiosk import from_gate
from scanner.config.zones import venue
from scanner.control.observer import Observer
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.decide.model import Direction
from scanner.kiosk import KioskServer, WebOptions
from scanner.mesh.paho_broker import PahoBroker
from scanner.supervise import Desk, Holds

pytestmark = needs_chromium
SUPERVISOR_PIN = "97531"


class Turnstile:
    """Gate g1 as ``gate run`` wires it: the act stage on MockFactory pins (a passage
    contact), the desk journaling its alarms and waking the mesh link, the kiosk."""

    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        self.mesh = MeshGate(tmp_path / "g1", "g1", broker).start()
        self.outputs = make(passage_pin=PASSAGE)
        self.stage = ActStage(self.outputs, self.mesh.gate.journal,
                              alarms=lambda reason: self.desk.alarm(reason))
        self.desk = Desk(self.mesh.gate.journal, self.mesh.keeper, self.stage.submit,
                         Holds(), release=self.stage.release, journaled=self.mesh.link.notify)
        self.stage.start()
        web = WebOptions(host="127.0.0.1", port=free_port(),
                         pin_file=str(tmp_path / "kiosk.pin"),
                         supervisor_pin_file=str(tmp_path / "supervisor.pin"))
        quick_pin_file(web.supervisor_pin_file, SUPERVISOR_PIN)
        self.kiosk: KioskServer = from_gate(self.mesh.gate, self.stage, web,
                                            health=lambda: (True, []), clock_ok=lambda: True,
                                            desk=self.desk).start()

    def push(self) -> None:
        """Someone turns the turnstile."""
        contact = self.outputs.factory.pin(PASSAGE)
        contact.drive_low()
        contact.drive_high()

    def close(self) -> None:
        self.kiosk.stop()
        self.stage.stop(5)
        self.outputs.close()
        self.mesh.close()


@pytest.fixture
def venue_room(tmp_path: Path) -> Iterator[tuple[Turnstile, ControlServer]]:
    broker = Broker(tmp_path / "broker", ["g1", "control"]).start()
    view = VenueView(venue(), tz=UTC)
    settings = broker.settings("control")
    observer = Observer(settings, PahoBroker(settings, "control"), view)
    server = ControlServer(view, healthy=observer.state)
    gate = None
    try:
        gate = Turnstile(tmp_path, broker)
        observer.start()
        server.start()
        assert wait_for(observer.connected.is_set), observer.failure
        yield gate, server
    finally:
        server.stop()
        observer.close()
        if gate is not None:
            gate.close()
        broker.stop()


def open_page(browser: Any, server: ControlServer) -> Any:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(server.url)
    page.wait_for_function("() => window.__control.frames > 0", timeout=5000)
    return page


@pytest.mark.slow
def test_a_forced_passage_raises_its_alarm_on_the_control_room_within_a_second(
        venue_room: tuple[Turnstile, ControlServer], browser: Any) -> None:
    gate, server = venue_room
    page = open_page(browser, server)
    assert page.inner_text("#alarms") == "No alarms"

    def force(n: int) -> float:
        pushed = time.monotonic()
        gate.push()  # nobody was granted: the turnstile was forced
        page.wait_for_function(
            "n => document.querySelectorAll(\"#alarms li[data-reason='PASSAGE_FORCED']"
            "[data-gate='g1']\").length === n", arg=n, timeout=5000)
        return time.monotonic() - pushed

    seconds, _ = within_a_second(force, tries=3)
    assert seconds < 1.0
    shown = page.inner_text("#alarms li[data-reason='PASSAGE_FORCED'] >> nth=0")
    assert shown.endswith("g1: forced — gate")
    row = page.locator("#log tbody tr").first
    assert row.locator("td").nth(4).inner_text() == "forced"
    page.close()


def test_a_supervisors_override_at_the_kiosk_appears_with_who_and_why(
        venue_room: tuple[Turnstile, ControlServer], browser: Any) -> None:
    gate, server = venue_room
    page = open_page(browser, server)
    denied = gate.mesh.check(1, Direction.OUT)  # not inside: a denial to override
    assert not denied.decision.granted
    kiosk = loopback.client(base_url=gate.kiosk.url, timeout=10)
    assert kiosk.post("/api/login", json={"pin": SUPERVISOR_PIN}).status_code == 200
    answer = kiosk.post("/api/override", json={"scan_id": denied.scan_id,
                                               "why": "SUPPORT_CASE",
                                               "note": "ticket #1234 reissued"})
    assert answer.status_code == 200, answer.text
    page.wait_for_function("() => [...document.querySelectorAll('#log td.who')]"
                           ".some((td) => td.textContent.includes('Support case'))",
                           timeout=5000)
    cells = page.locator("#log tbody tr").first.locator("td")
    assert cells.nth(1).inner_text() == "g1"
    assert cells.nth(5).inner_text() == denied.decision.barcode
    who = cells.nth(6).inner_text().split(" · ")
    assert who[0] == "supervisor" and who[1].startswith("session ")
    assert who[2:] == ["Support case", "ticket #1234 reissued", "lifted: not inside"]
    kiosk.close()
    page.close()
