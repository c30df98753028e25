"""The control room page in Debian's Chromium: gates and zones listed, a scan shown within
a second, and the same counts as /api/zones (what `gate zones --json` prints)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kits import loopback
from kits.browser import needs_chromium
from kits.waiting import within_a_second

from scanner.config.zones import parse_zones
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.mesh.message import Health, Record, Status
from scanner.tickets import utc_iso
from scanner.zones.escrow import Ledger

pytestmark = needs_chromium
TREE = parse_zones([{"id": "grounds", "name": "Grounds", "capacity": 100},
                    {"id": "lounge", "name": "VIP lounge", "parent": "grounds",
                     "capacity": 2}])


def now() -> datetime:
    return datetime.now(UTC)


def record(n: int, gate: str, direction: str = "IN") -> Record:
    at = now()
    return Record(f"s{gate}{n}", gate, n, f"{int(at.timestamp() * 1000):013d}-000000-{gate}",
                  f"t{n}", "ev", f"CODE{n:08d}", direction, "OK", "GRANTED", utc_iso(at))


@pytest.fixture
def room() -> Iterator[tuple[VenueView, ControlServer]]:
    view = VenueView(TREE, tz=UTC)
    for gate, zone in (("north-1", "grounds"), ("vip-1", "lounge")):
        view.ledger(Ledger(gate, zone, "north-1"), now())
        view.status(Status(gate, 0, True), now())
    view.health(Health("vip-1", "lounge", "1.0", utc_iso(now()), {"handheld": False}, 3,
                       ("fire",)), now())
    server = ControlServer(view)
    server.start()
    yield view, server
    server.stop()


@pytest.mark.slow
def test_the_page_lists_gates_and_zones_and_shows_a_scan_within_a_second(
        room: tuple[VenueView, ControlServer], browser: Any) -> None:
    view, server = room
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(server.url)
    page.wait_for_selector("#gates tr[data-gate='vip-1']", timeout=5000)
    assert page.locator("#gates tbody tr").count() == 2
    cells = page.locator("#gates tr[data-gate='vip-1'] td")
    assert cells.nth(7).inner_text() == "fire alarm: gate held open"
    assert cells.nth(4).inner_text() == "handheld: lost"
    assert page.locator("#zones [data-zone]").count() == 2
    def scan(n: int) -> float:
        view.record(record(n, "vip-1"), now())
        started = time.monotonic()
        page.wait_for_function(
            "n => document.querySelector(\"[data-zone='lounge'] .count\")?.textContent === "
            "`${n} / 2`", arg=n, timeout=5000)
        return time.monotonic() - started

    seconds, scans = within_a_second(scan, tries=2)  # the lounge holds 2
    assert seconds < 1.0
    assert page.locator("[data-zone='grounds'] .count").inner_text() == f"{scans} / 100"
    assert page.locator("#log tbody tr").first.inner_text().split("\t")[1] == "vip-1"
    page.close()


def test_the_api_counts_equal_the_page(room: tuple[VenueView, ControlServer],
                                       browser: Any) -> None:
    view, server = room
    for n in range(3):
        view.record(record(n, "north-1"), now())
    view.record(record(9, "vip-1"), now())
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.goto(server.url)
    page.wait_for_function("() => document.querySelector(\"[data-zone='grounds'] .count\")"
                           "?.textContent === '4 / 100'", timeout=5000)
    shown = {z: page.locator(f"[data-zone='{z}'] .count").get_attribute("data-inside")
             for z in ("grounds", "lounge")}
    api = loopback.get(f"{server.url}/api/zones", timeout=5).json()
    assert {z["id"]: str(z["inside"]) for z in api} == shown == {"grounds": "4", "lounge": "1"}
    page.close()


def test_metrics_carry_per_zone_occupancy(room: tuple[VenueView, ControlServer]) -> None:
    view, server = room
    view.record(record(1, "vip-1"), now())
    text = loopback.get(f"{server.url}/metrics", timeout=5).text
    assert 'gate_zone_inside{zone="lounge"} 1.0' in text
    assert 'gate_zone_capacity{zone="lounge"} 2.0' in text


def test_a_foreign_host_is_refused(room: tuple[VenueView, ControlServer]) -> None:
    _, server = room
    answer = loopback.get(f"{server.url}/api/venue", headers={"Host": "evil.example"}, timeout=5)
    assert answer.status_code == 421

