"""The steward's page at the sizes people use, in Debian's Chromium through Playwright.

Phone portrait (390x844), tablet (768x1024), the Pi's 800x480 both ways and 1080p: for a
grant, the longest denial in the longest language, an offline decision, the first sync and
a lost reader, no element leaves the viewport, no text is clipped, every control is on
screen and not covered; the result word is at least 15 % of the height on the kiosk
screens, and so is every other result word of every language. Each screen, the steward's
PIN dialog and the list of recent scans pass axe-core's WCAG 2.1 AA rules with no serious
or critical violation, and show a word and an icon beside every colour. A German browser
gets the German page. Screenshots land in $GATE_ARTIFACTS (default: a tmp directory).

The gate is real (``kits.kiosk.KioskGate``: SQLite files, the simulator, the act stage on
mock pins); what the page cannot be made to see otherwise (a sync in progress, a reader
unplugged, a denial of every reason) is driven through the kiosk's own seams: its probes
and status callables, and the act stage's listener it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kits.browser import axe_violations, needs_chromium, open_kiosk
from kits.kiosk import KioskGate, free_port

from scanner.act import Acted
from scanner.config import PAGE_LANGUAGES
from scanner.decide.model import Direction, Feedback, Reason
from scanner.kiosk import KioskServer, WebOptions
from scanner.kiosk.i18n import catalogue
from scanner.sim import SimServer

sync_api = pytest.importorskip("playwright.sync_api")

WAIT_MS = 5000
SIZES = {"phone": (390, 844), "tablet": (768, 1024), "800x480": (800, 480),
         "480x800": (480, 800), "1080p": (1920, 1080)}
KIOSK_SCREENS = ("800x480", "480x800", "1080p")
WORD_SHARE = 0.15       # the result word's height on a kiosk screen, of the viewport's
# The holder's name, of the screen's shorter side: 48 px, a capital of about 6.5 mm, on a
# 7" 800x480 screen either way round.
HOLDER_SHARE = 0.10

# One browser for the module: its tests run on one worker, so it starts once.
pytestmark = [needs_chromium, pytest.mark.xdist_group("kiosk-layout")]

DATA = Path(__file__).parent / "data"
# Every box in the viewport, no text clipped, every visible control on screen and on top.
LAYOUT_JS = (DATA / "kiosk_layout.js").read_text()

# What axe does not check: a word and an icon beside the colour, the result announced.
AUDIT_JS = (DATA / "kiosk_audit.js").read_text()


class Drive:
    """What the kiosk's probes and status say beyond the real gate's facts."""

    def __init__(self) -> None:
        self.syncing: dict[str, Any] | None = None
        self.reader: bool | None = True


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    from kits.sim import SIM_TOKEN

    from scanner.sim import World

    with SimServer(World(seed=11, events=1, tickets_per_event=120), token=SIM_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory,
         sim: SimServer) -> Iterator[tuple[KioskGate, KioskServer, Drive]]:
    kg = KioskGate(tmp_path_factory.mktemp("layout"), sim)
    drive = Drive()
    kg.kiosk.stop()  # one broadcaster drains the act stage's kiosk queue: this one
    parts = kg.kiosk.parts

    def status() -> dict[str, Any]:
        return parts.status() | {"first_sync": drive.syncing}

    driven = dataclasses.replace(parts, status=status, probes=dataclasses.replace(
        parts.probes, reader_connected=lambda: drive.reader))
    server = KioskServer(WebOptions(port=free_port(), pin_file=str(kg.web.pin_file)),
                         driven).start()
    yield kg, server, drive
    server.stop()
    kg.close()




def open_page(browser: Any, url: str, locale: str = "en-GB") -> Any:
    return open_kiosk(browser, url, locale=locale, wait_ms=WAIT_MS)


def painted(page: Any) -> int:
    return int(page.evaluate("() => window.__kiosk.latencies.length"))


def wait_painted(page: Any, before: int) -> None:
    page.wait_for_function("n => window.__kiosk.latencies.length > n", arg=before,
                           timeout=WAIT_MS)


def check(page: Any, label: str, artifacts: Path, name: str) -> None:
    page.wait_for_timeout(50)  # the resize's own re-fit
    problems = page.evaluate(LAYOUT_JS) + page.evaluate(AUDIT_JS) + axe_violations(page)
    page.screenshot(path=str(artifacts / f"kiosk-{name}-{label}.png"))
    assert not problems, f"{name} at {label}: {problems}"


def each_size(page: Any, artifacts: Path, name: str, show: Any) -> None:
    """``show()`` the screen afresh at every size (a decision fades after reveal_s)."""
    for label, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        show()
        check(page, label, artifacts, name)
        if label in KIOSK_SCREENS:
            word = page.evaluate("() => document.querySelector('#word')"
                                 ".getBoundingClientRect().height")
            assert word >= WORD_SHARE * h, f"{name} at {label}: word {word:.0f} px of {h}"
        if name in ("grant", "offline") and label in KIOSK_SCREENS:
            holder = page.evaluate("() => parseFloat(getComputedStyle("
                                   "document.querySelector('#holder')).fontSize)")
            assert holder >= HOLDER_SHARE * min(w, h), f"{name} at {label}: holder {holder} px"


def longest_denial() -> tuple[str, Reason]:
    """The language and reason whose detail and next step are longest together."""
    return max(((lang, reason) for lang in PAGE_LANGUAGES for reason in Reason
                if reason not in (Reason.GRANTED, Reason.CHECKED_OUT)),
               key=lambda lr: sum(len(catalogue(lr[0])[f"reason.{lr[1].value}.{p}"])
                                  for p in ("detail", "next")))


@pytest.mark.slow
def test_a_grant_fits_every_screen(gate: Any, browser: Any, artifacts: Path) -> None:
    kg, server, _drive = gate
    page = open_page(browser, server.url)
    codes = kg.valid_barcodes(40)[:len(SIZES)]

    def show() -> None:
        before = painted(page)
        kg.read(codes.pop())
        wait_painted(page, before)
        assert page.get_attribute("#result", "class") == "green"
        assert page.text_content("#word") == "VALID"

    each_size(page, artifacts, "grant", show)
    page.context.close()


@pytest.mark.slow
def test_the_longest_denial_in_the_longest_language_fits_every_screen(
        gate: Any, browser: Any, artifacts: Path) -> None:
    kg, server, _drive = gate
    lang, reason = longest_denial()
    page = open_page(browser, server.url, locale=lang)
    words = catalogue(lang)

    def show() -> None:
        real = kg.gate.gatekeeper.check("NOSUCHCODE", Direction.IN)
        decision = dataclasses.replace(real.decision, reason=reason, granted=False,
                                       feedback=Feedback.RED)
        before = painted(page)
        server.parts.listener.events.put(Acted(real.scan_id, decision, None, False,  # type: ignore[arg-type]
                                               None, False))
        wait_painted(page, before)
        assert page.text_content("#next") == words[f"reason.{reason.value}.next"]

    each_size(page, artifacts, "denial", show)
    page.context.close()


@pytest.mark.slow
def test_an_offline_decision_says_so_inside_the_result(
        gate: Any, browser: Any, artifacts: Path) -> None:
    kg, server, _drive = gate
    page = open_page(browser, server.url)
    codes = kg.valid_barcodes(40)[len(SIZES):2 * len(SIZES)]
    kg.pause_sync(True)
    kg.link.failed()
    server.events.refresh()
    try:
        page.wait_for_function("() => document.querySelector('#link')"
                               ".classList.contains('offline')", timeout=WAIT_MS)

        def show() -> None:
            before = painted(page)
            kg.read(codes.pop())
            wait_painted(page, before)
            assert page.is_visible("#offline-mark")
            assert page.text_content("#offline-mark").startswith("Decided offline")

        each_size(page, artifacts, "offline", show)
    finally:
        kg.link.reached()
        kg.pause_sync(False)
    page.context.close()


@pytest.mark.slow
def test_the_first_sync_replaces_ready_with_its_progress(
        gate: Any, browser: Any, artifacts: Path) -> None:
    _kg, server, drive = gate
    page = open_page(browser, server.url)
    drive.syncing = {"events": ["e1"], "done": 1200, "total": 48000}
    server.events.refresh()
    try:
        page.wait_for_function("() => document.querySelector('#word').textContent === 'SYNCING'",
                               timeout=WAIT_MS)
        assert page.text_content("#message") == "1200 of 48000 tickets synced"
        each_size(page, artifacts, "syncing", lambda: None)
    finally:
        drive.syncing = None
        server.events.refresh()
    page.wait_for_function("() => document.querySelector('#word').textContent === 'READY'",
                           timeout=WAIT_MS)
    page.context.close()


@pytest.mark.slow
def test_a_lost_reader_replaces_ready(gate: Any, browser: Any, artifacts: Path) -> None:
    _kg, server, drive = gate
    page = open_page(browser, server.url)
    drive.reader = False
    server.events.refresh()
    try:
        page.wait_for_function("() => document.querySelector('#word').textContent === 'NO READER'",
                               timeout=WAIT_MS)
        assert page.is_visible("#barcode")
        each_size(page, artifacts, "reader-lost", lambda: None)
    finally:
        drive.reader = True
        server.events.refresh()
    page.context.close()


# Every result word of the page's catalogue, shown through the page's own fit (its resize
# handler, the one paint calls): the height of one of its lines (the word's box over the
# lines a phrase wraps into, as the one-line measure above) and what the layout check finds.
EVERY_WORD_JS = """(words) => {
  const check = LAYOUT, word = document.querySelector('#word'), out = [];
  for (const text of words) {
    word.textContent = text;
    dispatchEvent(new Event('resize'));
    const range = document.createRange();
    range.selectNodeContents(word);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    out.push([text, word.getBoundingClientRect().height / lines, word.style.transform, check()]);
  }
  return out;
}""".replace("LAYOUT", LAYOUT_JS)


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
def test_every_result_word_keeps_its_height_and_fits_every_screen(
        gate: Any, browser: Any, artifacts: Path, lang: str) -> None:
    """On a kiosk screen each result word of the language, its longest among them, is at
    least 15 % of the height: a word too wide at that size is narrowed, never cut or
    hyphenated. On a phone it may be smaller; nothing leaves any screen."""
    _kg, server, _drive = gate
    page = open_page(browser, server.url, locale=lang)
    words = sorted({text for key, text in catalogue(lang).items() if key.startswith("word.")},
                   key=len)
    longest = words[-1]
    for label, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        shown = page.evaluate(EVERY_WORD_JS, words)
        assert [text for text, *_ in shown] == words
        for text, line, squeeze, problems in shown:
            assert not problems, f"{text!r} at {label}: {problems}"
            if label in KIOSK_SCREENS:
                assert line >= WORD_SHARE * h, \
                    f"{text!r} at {label}: a line of {line:.0f} px of {h} ({squeeze or 'as is'})"
        if label == "480x800":
            page.evaluate(EVERY_WORD_JS, [longest])
            page.screenshot(path=str(artifacts / f"kiosk-longest-word-{lang}-{label}.png"))
    page.context.close()


@pytest.mark.slow
def test_the_stewards_pin_dialog_fits_and_passes_the_audit(
        gate: Any, browser: Any, artifacts: Path) -> None:
    """Turning the gate round asks for the steward's PIN first: the dialog, at every size."""
    _kg, server, _drive = gate
    page = open_page(browser, server.url)
    page.click("#switch button[data-direction=OUT]")
    page.wait_for_selector("#login[open]", timeout=WAIT_MS)
    assert page.evaluate("() => document.activeElement.id") == "pin"
    each_size(page, artifacts, "pin", lambda: None)
    page.click("#login-cancel")
    assert page.get_attribute("#switch button[data-direction=IN]", "aria-pressed") == "true"
    page.context.close()


def test_a_german_browser_gets_the_german_page(gate: Any, browser: Any,
                                               artifacts: Path) -> None:
    kg, server, _drive = gate
    page = open_page(browser, server.url, locale="de-DE")
    assert page.evaluate("() => document.documentElement.lang") == "de"
    assert page.text_content("#word") == "BEREIT"
    assert page.text_content("#manual button") == "Prüfen"
    before = painted(page)
    kg.read("NOSUCHCODE-DE")
    wait_painted(page, before)
    assert page.text_content("#word") == "ABGELEHNT"
    assert page.text_content("#next") == "Gast zur Kasse schicken"
    page.screenshot(path=str(artifacts / "kiosk-german-800x480.png"))
    page.context.close()


def test_recent_scans_open_in_a_list(gate: Any, browser: Any, artifacts: Path) -> None:
    kg, server, _drive = gate
    page = open_page(browser, server.url)
    before = painted(page)
    kg.read("NOSUCHCODE-RECENT")
    wait_painted(page, before)
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("#recent-open")
    page.wait_for_selector("#recent[open]", timeout=WAIT_MS)
    first = page.text_content("#recent-list li")
    assert "DENIED" in first and "unknown" in first
    check(page, "phone", artifacts, "recent")
    page.context.close()
