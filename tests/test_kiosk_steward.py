"""The steward's and the supervisor's page in Debian's Chromium: a held ticket confirmed
with a click (after the steward's PIN), a denial overridden (after the supervisor's PIN),
a forced passage shown as an alarm, and an information scan that records nothing. The gate
is real (``kits.kiosk.KioskGate``: SQLite, the simulator, MockFactory pins, a lane)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kits.browser import needs_chromium, open_kiosk
from kits.gpio import PASSAGE
from kits.kiosk import KioskGate, free_port, quick_pin_file, running_lane
from kits.waiting import wait_for

from scanner.config import PolicyConfig
from scanner.decide.model import Direction
from scanner.kiosk import WebOptions
from scanner.run.lane import Lane, LaneRead
from scanner.sim import SimServer

pytest.importorskip("playwright.sync_api")
pytestmark = [needs_chromium, pytest.mark.xdist_group("kiosk-steward")]

WAIT_MS = 8000
STEWARD_PIN, SUPERVISOR_PIN = "1357", "86420"


@pytest.fixture
def kg(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    web = WebOptions(host="127.0.0.1", port=free_port(), pin_file=str(tmp_path / "kiosk.pin"),
                     supervisor_pin_file=str(tmp_path / "supervisor.pin"))
    quick_pin_file(web.pin_file, STEWARD_PIN)
    quick_pin_file(web.supervisor_pin_file, SUPERVISOR_PIN)
    with KioskGate(tmp_path, sim_server, web, pins={"passage_pin": PASSAGE},
                   policy=PolicyConfig(confirm_discounted=True, confirm_timeout=20)) as gate:
        yield gate


@pytest.fixture
def lane(kg: KioskGate) -> Iterator[Lane]:
    with running_lane(kg) as worker:
        yield worker


@pytest.fixture
def page(browser: Any, kg: KioskGate) -> Iterator[Any]:
    tab = open_kiosk(browser, kg.url, wait_ms=WAIT_MS)
    yield tab
    tab.context.close()


def word_is(page: Any, word: str) -> None:
    page.wait_for_function("w => document.querySelector('#word').textContent === w",
                           arg=word, timeout=WAIT_MS)


def unlock(page: Any, pin: str) -> None:
    page.wait_for_selector("#login[open]", timeout=WAIT_MS)
    page.fill("#pin", pin)
    page.click("#login-form button[type=submit]")


def reasons(kg: KioskGate) -> list[str]:
    return [e["reason"] for e in kg.gate.journal.entries()]


def discounted(kg: KioskGate) -> str:
    world = kg.sim.world
    return next(doc["barcode"] for event_id in world.event_ids
                for doc in world.current_tickets(event_id)
                if doc.get("discount") and doc.get("status", "VALID") == "VALID"
                and not doc.get("slotStartTime"))


@pytest.mark.slow
def test_a_held_ticket_is_shown_in_its_colour_and_confirmed_on_the_page(
        kg: KioskGate, lane: Lane, page: Any, artifacts: Path) -> None:
    lane.offer(LaneRead(discounted(kg), Direction.IN, "handheld"))
    word_is(page, "CHECK")
    # In /me's colorSettings.actionRequired (the simulator's: orange), with its own word
    # and icon, so colour is not the only signal.
    assert page.evaluate("() => document.querySelector('#result').className") == "orange"
    assert page.get_attribute("#icon", "href") == "#icon-hand"
    assert page.text_content("#message").startswith("Check before entry: reduced price")
    page.screenshot(path=str(artifacts / "kiosk-held.png"))
    page.click("#confirm")
    unlock(page, STEWARD_PIN)
    word_is(page, "VALID")
    assert reasons(kg) == ["ACTION_REQUIRED", "CONFIRMED"]


@pytest.mark.slow
def test_a_supervisor_overrides_a_denial_on_the_page(kg: KioskGate, page: Any) -> None:
    code = kg.valid_barcodes(1)[0]
    kg.read(code)
    kg.read(code)  # already inside: denied
    word_is(page, "ALREADY IN")
    page.click("#override")
    page.select_option("#override-why", "PASSBACK_FORGIVEN")
    page.fill("#override-note", "left a bag at the gate")
    page.click("#override-form button[type=submit]")
    unlock(page, SUPERVISOR_PIN)
    word_is(page, "OVERRIDE")
    last = list(kg.gate.journal.entries())[-1]
    assert (last["reason"], last["role"], last["why"], last["note"]) == \
        ("OVERRIDDEN", "supervisor", "PASSBACK_FORGIVEN", "left a bag at the gate")


@pytest.mark.slow
def test_a_forced_passage_is_an_alarm_on_the_page(kg: KioskGate, page: Any,
                                                  artifacts: Path) -> None:
    contact = kg.outputs.factory.pin(PASSAGE)
    contact.drive_low()
    contact.drive_high()
    word_is(page, "ALARM")
    assert page.text_content("#message") == "The turnstile turned without a valid ticket"
    page.screenshot(path=str(artifacts / "kiosk-forced.png"))
    assert reasons(kg) == ["PASSAGE_FORCED"]


@pytest.mark.slow
def test_an_information_scan_on_the_page_records_nothing(kg: KioskGate, page: Any) -> None:
    code = kg.valid_barcodes(1)[0]
    page.click("#tools-open")
    page.click("#info-mode")
    assert page.is_visible("#info-on")
    page.fill("#barcode", code)
    page.click("#manual button[type=submit]")
    unlock(page, STEWARD_PIN)
    page.wait_for_function("() => window.__kiosk.info !== null", timeout=WAIT_MS)
    word_is(page, "INFO · VALID")
    time.sleep(0.3)
    assert reasons(kg) == []


def test_the_recent_list_shows_the_decisions_taken_before_a_restart(
        kg: KioskGate, browser: Any) -> None:
    """The page's parts built again on the same journal: the list opens with this gate's
    decisions from before, newest first; the forced passage, nobody's scan, is not one."""
    contact = kg.outputs.factory.pin(PASSAGE)
    contact.drive_low()  # first: after a grant, a turn is its holder passing
    contact.drive_high()
    wait_for(lambda: reasons(kg) == ["PASSAGE_FORCED"], "the forced passage in the journal")
    code = kg.valid_barcodes(1)[0]
    kg.read(code)
    kg.read(code)  # already inside: denied
    kg.read("NOSUCHCODE-BEFORE")
    kg.restart_kiosk()
    tab = open_kiosk(browser, kg.url, wait_ms=WAIT_MS)
    try:
        tab.click("#recent-open")
        tab.wait_for_selector("#recent[open]", timeout=WAIT_MS)
        items = tab.eval_on_selector_all("#recent-list li", "els => els.map(e => e.textContent)")
        assert len(items) == 3, items
        assert "✖ DENIED" in items[0] and "unknown" in items[0]
        assert "✖ ALREADY IN" in items[1]
        assert "✔ VALID" in items[2]
    finally:
        tab.context.close()
