"""The control room on a real mosquitto: an observer hears two gates (no lanes, no uploads)
and its page in Chromium lists both gates and their zones, updating within a second of a
scan; the gates' own zone counts equal the page's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_kit import needs_chromium
from mesh_kit import Broker, MeshGate, wait_for

from scanner.config.zones import parse_zones
from scanner.control.observer import Observer
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.decide.model import Direction
from scanner.mesh.paho_broker import PahoBroker
from scanner.zones.book import ZoneBook

pytestmark = needs_chromium
TABLES = [{"id": "grounds", "name": "Grounds", "capacity": 50},
          {"id": "lounge", "name": "VIP lounge", "parent": "grounds", "capacity": 5}]
TREE = parse_zones(TABLES)


@pytest.fixture
def room(tmp_path: Path) -> Iterator[tuple[list[MeshGate], VenueView, ControlServer]]:
    broker = Broker(tmp_path / "broker", ["A", "B", "control"]).start()
    gates: list[MeshGate] = []
    view = VenueView(TREE, tz=UTC)
    settings = broker.settings("control")
    observer = Observer(settings, PahoBroker(settings, "control"), view)
    server = ControlServer(view, healthy=observer.state)
    try:
        for name, zone in (("A", "grounds"), ("B", "lounge")):
            book = ZoneBook(TREE, name, zone, tz=UTC, minter="A")
            gates.append(MeshGate(tmp_path / name, name, broker, zones=book).start())
        observer.start()
        server.start()
        assert wait_for(observer.connected.is_set), observer.failure
        for g in gates:  # the minter has handed places to both gates
            assert wait_for(lambda g=g: all(g.zones.rights(z) > 0
                                            for z in TREE.path(g.zones.zone)))
        yield gates, view, server
    finally:
        server.stop()
        observer.stop()
        observer.join(5)
        for g in gates:
            g.close()
        broker.stop()


def test_the_page_shows_every_gate_and_a_scan_within_a_second(room: Any,
                                                              browser: Any) -> None:
    (_, b), _, server = room
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(server.url)
    page.wait_for_selector("#gates tr[data-gate='B']", timeout=10000)
    assert page.locator("#gates tbody tr").count() == 2
    assert page.locator("#zones [data-zone]").count() == 2
    inside = "z => document.querySelector(`[data-zone='${z[0]}'] .count`)?.dataset.inside === z[1]"
    started = time.monotonic()
    assert b.check(1).decision.granted
    page.wait_for_function(inside, arg=["lounge", "1"], timeout=1000)
    assert time.monotonic() - started < 1.0
    assert page.locator("[data-zone='grounds'] .count").get_attribute("data-inside") == "1"
    assert page.locator("#gates tr[data-gate='B'] td").nth(1).inner_text() == "lounge"
    page.close()


def test_the_gates_counts_equal_the_page(room: Any, browser: Any) -> None:
    (a, b), _, server = room
    for n in (1, 2, 3):
        assert a.check(n).decision.granted
    assert b.check(4).decision.granted
    assert b.check(4, Direction.OUT).decision.granted
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.goto(server.url)
    page.wait_for_function("() => document.querySelector(\"[data-zone='grounds'] .count\")"
                           "?.dataset.inside === '4'", timeout=5000)
    shown = {z: int(page.locator(f"[data-zone='{z}'] .count").get_attribute("data-inside"))
             for z in ("grounds", "lounge")}
    api = {z["id"]: z["inside"] for z in httpx.get(f"{server.url}/api/zones", timeout=5).json()}
    for g in (a, b):
        assert wait_for(lambda g=g: g.zones.counts(g.gate.clock()) == shown)
    assert api == shown == {"grounds": 4, "lounge": 0}
    page.close()
