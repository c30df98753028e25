"""The control room's page at the sizes people use, in Debian's Chromium through Playwright.

Phone portrait (390x844), the Pi's 800x480 and a control-room monitor (1920x1080), in
English and in the language whose words are longest, with a busy venue (a dozen gates with
long names, alarms and lost readers, nested zones, one full, conflicts and a long log): the
page may grow downwards, but nothing is wider than the screen, no text is clipped and every
control on screen is on top (the kiosk's layout check, tests/data/kiosk_layout.js), and the
page passes axe-core's WCAG 2.1 AA rules with no serious or critical violation.
Screenshots land in $GATE_ARTIFACTS (default: a tmp directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kits.browser import axe_violations, needs_chromium

from scanner.config import PAGE_LANGUAGES
from scanner.config.zones import parse_zones
from scanner.control.commands import Commands
from scanner.control.routes import CONTROL
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.kiosk.auth import write_pin_file
from scanner.kiosk.i18n import catalogue
from scanner.mesh.message import Health, Record, Status
from scanner.tickets import utc_iso
from scanner.zones.escrow import Ledger

pytestmark = [needs_chromium, pytest.mark.xdist_group("control-layout")]

SIZES = {"phone": (390, 844), "800x480": (800, 480), "1080p": (1920, 1080)}
DATA = Path(__file__).parent / "data"
LAYOUT_JS = (DATA / "kiosk_layout.js").read_text()
TREE = parse_zones([
    {"id": "grounds", "name": "Festival grounds and parking", "capacity": 20000},
    {"id": "north", "name": "North stand, upper and lower tiers", "parent": "grounds",
     "capacity": 4},
    {"id": "lounge", "name": "VIP lounge", "parent": "north", "capacity": 120},
    {"id": "press", "name": "Press", "parent": "grounds"}])
ZONE_OF = ["grounds", "north", "lounge", "press"]
PIN = "97531"


def longest_language() -> str:
    return max(PAGE_LANGUAGES, key=lambda lang: sum(map(len, catalogue(lang, CONTROL).values())))


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlServer]:
    now = datetime.now(UTC)
    view = VenueView(TREE, tz=UTC)
    gates = [f"{zone}-entrance-gate-{n:02d}" for n in range(3) for zone in ZONE_OF]
    for i, gate in enumerate(gates):
        zone = ZONE_OF[i % len(ZONE_OF)]
        view.ledger(Ledger(gate, zone, gates[0]), now)
        view.status(Status(gate, 0, i % 3 != 0), now)
        view.health(Health(gate, zone, "1.0.0+build.20261207", utc_iso(now),
                           {"handheld-scanner-left": i % 2 == 0, "camera-overhead": True},
                           i * 37, ("fire", "reader:handheld-scanner-left") if i % 4 == 0
                           else ()), now)
    at = int(now.timestamp() * 1000)
    for n in range(60):
        gate = gates[n % len(gates)]
        view.record(Record(f"s{n}", gate, n + 1, f"{at + n:013d}-000000-{gate}", f"t{n % 20}",
                           "ev", f"CODE-{n:012d}-LONGER-THAN-MOST", "IN" if n % 5 else "OUT",
                           "OK" if n % 3 else "FAIL",
                           "GRANTED" if n % 3 else "TICKET_TYPE_NOT_ALLOWED",
                           utc_iso(now)), now)
    # An override with who and why, a forced passage and a manual release: the alarms
    # panel and the log's who column with a supervisor's long note.
    for n, (reason, who) in enumerate([
            ("OVERRIDDEN", ("supervisor", "a1b2c3d4", "SUPPORT_CASE",
                            "ticket reissued by the box office after a long phone call",
                            "s2")),
            ("PASSAGE_FORCED", ("gate", None, "PASSAGE_FORCED", None, None)),
            ("MANUAL_RELEASE", ("steward", "0f0e0d0c", None, None, None))], start=60):
        gate = gates[n % len(gates)]
        view.record(Record(f"s{n}", gate, n + 1, f"{at + n:013d}-000000-{gate}", None, None,
                           "", "IN", "OK" if reason == "OVERRIDDEN" else "FAIL", reason,
                           utc_iso(now), *who), now)
    write_pin_file(pin_file := tmp_path_factory.mktemp("pins") / "supervisor.pin", PIN)
    server = ControlServer(view, supervisor_pin_file=str(pin_file),
                           commands=Commands(unsent, tuple((z.id, z.label) for z in TREE)))
    server.start()
    yield server
    server.stop()


def unsent(*_order: Any) -> Any:
    raise AssertionError("the layout check sends no command")


def open_page(browser: Any, url: str, locale: str) -> Any:
    context = browser.new_context(locale=locale, viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => window.__control && window.__control.frames > 0",
                           timeout=5000)
    # The supervisor's session: the command buttons are on the page too.
    page.fill("#sup-pin", PIN)
    page.click("#sup-login button")
    page.wait_for_selector("#command-form:not([hidden])", timeout=5000)
    return page


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", longest_language()])
def test_the_page_fits_every_screen(room: ControlServer, browser: Any, artifacts: Path,
                                    lang: str) -> None:
    page = open_page(browser, room.url, lang)
    assert page.evaluate("() => document.documentElement.lang") == lang
    assert page.text_content("h1") == catalogue(lang, CONTROL)["page.title"]
    assert page.locator("#gates tbody tr").count() == 12
    assert page.locator(".zone.full").count() == 1
    assert page.locator("#alarms li[data-reason]").count() == 2
    for label, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(50)
        problems = page.evaluate(LAYOUT_JS, True) + axe_violations(page)
        page.screenshot(path=str(artifacts / f"control-{lang}-{label}.png"))
        assert not problems, f"{lang} at {label}: {problems}"
    page.context.close()
