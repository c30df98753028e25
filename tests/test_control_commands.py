"""Venue commands from the control room's page, in Debian's Chromium, on a real mosquitto
with the shipped ACL: the supervisor's PIN, stop entry for a zone and resume, a wrong PIN
that issues nothing, and without a key no buttons and a refused API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from kits import loopback
from kits.browser import needs_chromium
from kits.kiosk import quick_pin_file
from kits.mesh import KEY, Broker, wait_for
from kits.venue import SUPERVISOR, ZONES, Supervisor, VenueGate
from kits.waiting import within_a_second

from scanner.app.control import commands
from scanner.config import ControlConfig, GateConfig, MeshConfig, WebConfig
from scanner.config.zones import parse_zones
from scanner.control.commands import NO_KEY
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.decide.model import Reason
from scanner.decide.orders import Mode
from scanner.mesh.localbroker import password

pytestmark = needs_chromium
GATES = {"t1": "stand", "n1": "north"}
SUPERVISOR_PIN = "97531"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "broker", [*GATES, "control", SUPERVISOR]).start()
    yield broker
    broker.stop()


@pytest.fixture
def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(tmp_path / "keys")


@pytest.fixture
def venue(tmp_path: Path, supervisor: Supervisor,
          broker: Broker) -> Iterator[dict[str, VenueGate]]:
    gates = {g: VenueGate(tmp_path / g, g, supervisor.public, broker, zone=z)
             for g, z in GATES.items()}
    for gate in gates.values():
        gate.worker.start()
    for gate in gates.values():
        assert wait_for(gate.book.settled.is_set) and wait_for(gate.worker.connected.is_set)
    yield gates
    for gate in gates.values():
        gate.close()


def secret(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def control_config(tmp_path: Path, broker: Broker, supervisor: Supervisor) -> GateConfig:
    """The control room's configuration: the venue's broker as its own mesh user, the
    supervisor's key, the broker's supervisor user to publish with, the supervisor's PIN."""
    folder = tmp_path / "control"
    folder.mkdir()
    pin_file = folder / "supervisor.pin"
    quick_pin_file(pin_file, SUPERVISOR_PIN)
    mesh = MeshConfig(url=broker.url, key_file=secret(folder / "mesh.key", KEY.decode()),
                      credentials_file=secret(folder / "mesh.creds",
                                              f"control:{password('control')}"))
    return GateConfig(gate_id="control", mesh=mesh,
                      web=WebConfig(supervisor_pin_file=str(pin_file)),
                      control=ControlConfig(
                          supervisor_key_file=str(supervisor.private),
                          credentials_file=secret(folder / "supervisor.creds",
                                                  f"{SUPERVISOR}:{password(SUPERVISOR)}")),
                      zones=parse_zones(ZONES))


@pytest.fixture
def room(tmp_path: Path, broker: Broker, supervisor: Supervisor) -> Iterator[ControlServer]:
    config = control_config(tmp_path, broker, supervisor)
    server = ControlServer(VenueView(config.zones, tz=UTC),
                           supervisor_pin_file=config.web.supervisor_pin_file or "",
                           commands=commands(config))
    server.start()
    yield server
    server.stop()


def unlock(page: Any, url: str, pin: str) -> None:
    page.goto(url)
    page.wait_for_selector("#commands:not([hidden]) #sup-pin", timeout=5000)
    page.fill("#sup-pin", pin)
    page.click("#sup-login button")


def send(page: Any, button: str) -> float:
    """Click ``button``, confirm, and wait for the page to say it was sent: then."""
    page.click(button)
    page.wait_for_selector("#confirm[open]", timeout=2000)
    page.click("#confirm-yes")
    page.wait_for_function("() => document.querySelector('#command-said').textContent"
                           ".startsWith('Sent:')", timeout=20000)
    return time.monotonic()


@pytest.mark.slow
def test_stop_entry_for_a_zone_from_the_page_stops_its_gate_within_a_second_and_resume_undoes_it(
        room: ControlServer, venue: dict[str, VenueGate], browser: Any) -> None:
    t1, n1 = venue["t1"], venue["n1"]
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    unlock(page, room.url, SUPERVISOR_PIN)
    page.wait_for_selector("#command-form:not([hidden])", timeout=5000)
    page.check("input[name=scope][value=zone]")
    page.select_option("#cmd-zone", "stand")
    page.fill("#cmd-reason", "crush at the stand")
    page.click("#command-form button[data-kind=stop_entry]")
    assert page.inner_text("#confirm-text") == "Send “Stop entry” for zone stand?"
    page.click("#confirm button[value=no]")  # cancelled: nothing goes
    time.sleep(0.3)
    assert t1.book.applied == 0

    def stop(n: int) -> float:
        if n > 1:  # undo the last try first
            send(page, "#command-form button[data-kind=resume]:not([data-all])")
            assert wait_for(lambda: t1.book.orders().mode is Mode.NORMAL, 5.0)
        sent = send(page, "#command-form button[data-kind=stop_entry]")
        assert wait_for(lambda: t1.book.orders().mode is Mode.STOPPED, 5.0)
        return time.monotonic() - sent

    seconds, _ = within_a_second(stop, tries=3)
    assert seconds < 1.0
    assert t1.check(1).decision.reason is Reason.ENTRY_STOPPED
    assert n1.check(1).decision.reason is Reason.GRANTED  # north is around the stand
    assert t1.book.state()["last"]["reason"] == "crush at the stand"
    send(page, "#command-form button[data-kind=resume]:not([data-all])")
    assert wait_for(lambda: t1.book.orders().mode is Mode.NORMAL, 5.0)
    assert t1.check(2).decision.reason is Reason.GRANTED
    page.close()


def test_a_wrong_pin_issues_nothing(room: ControlServer, venue: dict[str, VenueGate],
                                    browser: Any) -> None:
    page = browser.new_page(viewport={"width": 800, "height": 480})
    unlock(page, room.url, "0000")
    page.wait_for_function("() => document.querySelector('#command-said').textContent"
                           " === 'PIN not accepted'", timeout=5000)
    assert page.is_hidden("#command-form")
    answer = page.evaluate("""async () => (await fetch('/api/commands', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({kind: 'lockdown', scope: 'venue'})})).status""")
    assert answer == 401
    time.sleep(0.5)
    assert all(g.book.applied == 0 and g.book.orders().mode is Mode.NORMAL
               for g in venue.values())
    page.close()


def test_without_a_key_the_page_has_no_buttons_and_the_api_refuses(browser: Any) -> None:
    server = ControlServer(VenueView(parse_zones(ZONES), tz=UTC))
    server.start()
    try:
        for method in ("GET", "POST"):
            answer = loopback.request(method, f"{server.url}/api/commands", timeout=5,
                                   json={"kind": "lockdown", "scope": "venue"})
            assert (answer.status_code, answer.json()) == (403, {"error": NO_KEY})
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(server.url)
        page.wait_for_function("() => window.__control.frames > 0", timeout=5000)
        page.wait_for_timeout(300)  # the page's own question about commands has an answer
        assert page.is_hidden("#commands")
        assert page.locator("#commands button:visible").count() == 0
        page.close()
    finally:
        server.stop()
