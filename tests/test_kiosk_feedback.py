"""Beeps and a vibration on the steward's page, as ``/me`` allows them, in Debian's Chromium.

The gate is real (``kits.kiosk.KioskGate``: SQLite files, the simulator whose ``/me`` says
``enableSoundFeedback`` and ``enableHapticFeedback``, the sync that stores it, the state the
page gets). The one mock is the browser's edge that cannot be heard or felt here: an init
script wraps ``navigator.vibrate`` and the page's ``AudioContext`` and records each
vibration pattern and each tone started, then lets the real call go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from kits.browser import needs_chromium, open_kiosk
from kits.kiosk import KioskGate

pytest.importorskip("playwright.sync_api")
pytestmark = [needs_chromium, pytest.mark.xdist_group("kiosk-feedback")]

WAIT_MS = 8000

RECORD_JS = """
(() => {
  const heard = window.__feedback = [];
  const vibrate = Navigator.prototype.vibrate;
  Navigator.prototype.vibrate = function (pattern) {
    heard.push({ vibrate: pattern });
    return vibrate ? vibrate.call(this, pattern) : true;
  };
  const Real = window.AudioContext;
  const made = window.__contexts = [];
  window.AudioContext = class extends Real {
    constructor(...args) { super(...args); made.push(this); }
    createOscillator() {
      const osc = super.createOscillator(), start = osc.start.bind(osc);
      osc.start = (when) => { heard.push({ tone: osc.frequency.value }); return start(when); };
      return osc;
    }
  };
})();
"""


@pytest.fixture
def page(browser: Any, kg: KioskGate) -> Iterator[Any]:
    tab = open_kiosk(browser, kg.url, init_script=RECORD_JS, wait_ms=WAIT_MS)
    yield tab
    tab.context.close()


def allow(kg: KioskGate, page: Any, *, sound: bool, haptic: bool) -> None:
    """Change /me on the simulator and wait until the page's state carries it (the gate's
    own sync stores /me; the state message brings it to the page)."""
    world = kg.sim.world
    world.device = dataclasses.replace(world.device, sound_feedback=sound,
                                       haptic_feedback=haptic)
    kg.kiosk.events.refresh()
    page.wait_for_function("want => { const f = window.__kiosk.state.feedback;"
                           " return f.sound === want[0] && f.haptic === want[1]; }",
                           arg=[sound, haptic], timeout=WAIT_MS)


def heard_after(kg: KioskGate, page: Any, barcode: str) -> list[dict[str, Any]]:
    """What the page vibrated and played for one read."""
    before = page.evaluate("() => window.__feedback.length")
    painted = page.evaluate("() => window.__kiosk.latencies.length")
    kg.read(barcode)
    page.wait_for_function("n => window.__kiosk.latencies.length > n", arg=painted,
                           timeout=WAIT_MS)
    page.wait_for_timeout(100)  # feedback follows the paint in the same task
    return list(page.evaluate("n => window.__feedback.slice(n)", before))


@pytest.mark.slow
def test_a_grant_and_a_denial_vibrate_and_beep_differently_when_me_allows(
        kg: KioskGate, page: Any) -> None:
    allow(kg, page, sound=True, haptic=True)
    grant = heard_after(kg, page, kg.valid_barcodes(1)[0])
    denial = heard_after(kg, page, "NOSUCHCODE-FEEDBACK")
    assert [e["vibrate"] for e in grant if "vibrate" in e] == [120]
    assert [e["vibrate"] for e in denial if "vibrate" in e] == [[90, 60, 90, 60, 90]]
    assert [e["tone"] for e in grant if "tone" in e] == [880]
    assert [e["tone"] for e in denial if "tone" in e] == [330, 330, 330]


@pytest.mark.slow
def test_neither_sound_nor_vibration_when_me_says_no(kg: KioskGate, page: Any) -> None:
    allow(kg, page, sound=False, haptic=False)
    assert heard_after(kg, page, kg.valid_barcodes(1)[0]) == []
    assert heard_after(kg, page, "NOSUCHCODE-QUIET") == []


def test_each_switch_acts_alone(kg: KioskGate, page: Any) -> None:
    """Sound without vibration, then vibration without sound."""
    allow(kg, page, sound=True, haptic=False)
    heard = heard_after(kg, page, "NOSUCHCODE-SOUND")
    assert heard and all("tone" in e for e in heard)
    allow(kg, page, sound=False, haptic=True)
    assert heard_after(kg, page, "NOSUCHCODE-HAPTIC") == [{"vibrate": [90, 60, 90, 60, 90]}]


# Every evaluation Playwright makes in a page counts as a user's gesture there, so the tab
# below is watched through its console until it is touched: the page says when it is ready
# and what state each audio context it makes starts in.
UNTOUCHED_JS = RECORD_JS + """
(() => {
  const ready = setInterval(() => {
    const k = window.__kiosk;
    if (k && k.connected && k.state && k.lang) { clearInterval(ready); console.log("kiosk ready"); }
  }, 50);
  const Recorded = window.AudioContext;
  window.AudioContext = class extends Recorded {
    constructor(...args) { super(...args); console.log("audio " + this.state); }
  };
})();
"""


def test_the_sound_starts_at_the_first_touch_of_the_page(browser: Any, kg: KioskGate) -> None:
    """Chromium's autoplay policy suspends a context made before anyone touched the page
    (a steward's phone; only the gate's own kiosk browser is started without the policy):
    the first touch wakes it, so the beeps are heard from then on."""
    context = browser.new_context(locale="en-GB", viewport={"width": 800, "height": 480})
    context.add_init_script(UNTOUCHED_JS)
    tab = context.new_page()
    try:
        with tab.expect_console_message(lambda m: m.text == "kiosk ready", timeout=WAIT_MS):
            tab.goto(kg.url)
        with tab.expect_console_message(lambda m: m.text.startswith("audio "),
                                        timeout=WAIT_MS) as made:
            kg.read("NOSUCHCODE-UNTOUCHED")
        assert made.value.text == "audio suspended"
        tab.locator("#word").click()
        tab.wait_for_function("() => window.__contexts.length"
                              " && window.__contexts.every(c => c.state === 'running')",
                              timeout=WAIT_MS)
        heard = heard_after(kg, tab, "NOSUCHCODE-TOUCHED")
        assert [e["tone"] for e in heard] == [330, 330, 330]
        assert tab.evaluate("() => window.__contexts.length") == 1
    finally:
        context.close()
