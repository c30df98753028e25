"""The kiosk page served by ``gate run`` (a subprocess against the simulator, a pty handheld,
mock pins), in Debian's Chromium headless through Playwright: a handheld code paints it
green with the holder's name, a bad one red with its reason; the offline badge follows the
simulator; manual entry works (with the PIN beyond loopback); /metrics agrees with the
journal; the page survives a restart of ``gate run``. One daemon and one browser serve the
module, in test order. Screenshots go to $GATE_ARTIFACTS (default: a tmp directory)."""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kits import loopback
from kits.browser import needs_chromium
from kits.journal import journal_path, open_journal
from kits.kiosk import free_port, quick_pin_file
from kits.sim import SIM_TOKEN
from prometheus_client.parser import text_string_to_metric_families
from test_run_e2e import E2E_WAIT, Daemon, Handheld, environment, valid_barcodes, write_config

from scanner.config import load_config
from scanner.kiosk.i18n import catalogue
from scanner.sim import SimServer, World

sync_api = pytest.importorskip("playwright.sync_api")

WAIT_MS = 5000
LINK_WAIT_MS = int(E2E_WAIT * 1000)  # the sync notices the simulator gone (or back) in its time
SIZES = {"800x480": (800, 480), "1080p": (1920, 1080)}
LATENCY_SCANS = 30
CODES = 12 + LATENCY_SCANS
PIN = "4711"
BADGE_IS = "w => document.querySelector('#link').textContent.startsWith(w)"
CLASS_IS = "c => document.querySelector('#result').className === c"

pytestmark = [
    needs_chromium,
    pytest.mark.slow,
    # One browser, daemon and page for the module, and its tests follow one another on
    # that page: they run on one worker, in order.
    pytest.mark.xdist_group("kiosk-browser"),
]


class Kiosk:
    """``gate run`` with its page on a free loopback port, and tickets it admits."""

    def __init__(self, root: Path, sim: SimServer, handheld: Handheld,
                 web: dict[str, Any]) -> None:
        self.root, self.sim = root, sim
        self.port = free_port()
        self.config = write_config(root, sim, handheld, web={"port": self.port, **web})
        self.env = environment(self.config, sim)
        self.codes = valid_barcodes(self.config, self.env, CODES)
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs = 0
        self.daemon = self.start()

    def start(self) -> Daemon:
        self.runs += 1
        daemon = Daemon(self.env, self.root / f"run-{self.runs}.log")
        deadline = time.monotonic() + E2E_WAIT
        while True:  # ready: the supervisor started every worker and each one beats
            assert daemon.proc.poll() is None, daemon.log()
            try:
                if loopback.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return daemon
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                log = daemon.log()
                daemon.kill()  # never ready: it must not outlive the test that started it
                raise AssertionError(f"/healthz never 200:\n{log}")
            time.sleep(0.1)

    def restart(self) -> None:
        assert self.daemon.signal(signal.SIGTERM) == 0, self.daemon.log()
        self.daemon = self.start()

    def code(self) -> str:
        """A ticket not scanned yet (a second scan would be orange)."""
        return self.codes.pop()

    def holder(self, barcode: str) -> str:
        return str(self.sim.world.find(barcode)["name"])  # type: ignore[index]

    def journal(self) -> list[dict[str, Any]]:
        config = load_config(self.config, env=self.env)
        with open_journal(journal_path(config), config.gate_id) as journal:
            return list(journal.entries())

    def close(self) -> None:
        if self.daemon.proc.poll() is None:
            self.daemon.signal(signal.SIGTERM)
        else:
            self.daemon.kill()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    # A fixed port, so the simulator can be stopped and started again at the same address.
    with SimServer(World(seed=7, events=1, tickets_per_event=200), token=SIM_TOKEN,
                   port=free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def handheld() -> Iterator[Handheld]:
    h = Handheld()
    yield h
    h.close()


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory, sim: SimServer,
          handheld: Handheld) -> Iterator[Kiosk]:
    k = Kiosk(tmp_path_factory.mktemp("kiosk"), sim, handheld, web={})
    yield k
    k.close()



@pytest.fixture(scope="module")
def page(browser: Any, kiosk: Kiosk) -> Iterator[Any]:
    """One page for the module, as on the gate's own screen."""
    p = open_page(browser, kiosk.url)
    yield p
    p.close()



def open_page(browser: Any, url: str, size: tuple[int, int] = SIZES["800x480"]) -> Any:
    p = browser.new_page(viewport={"width": size[0], "height": size[1]})
    p.goto(url)
    p.wait_for_function("() => window.__kiosk && window.__kiosk.connected "
                        "&& window.__kiosk.state", timeout=WAIT_MS)
    return p


def painted(page: Any) -> int:
    return int(page.evaluate("() => window.__kiosk.latencies.length"))


def scan_and_paint(page: Any, handheld: Handheld, code: str) -> dict[str, Any]:
    """Write ``code`` to the handheld; the page's probe of the decision it painted, with
    ``ms``: from the write to the painted frame."""
    before = painted(page)
    started = time.time() * 1000
    handheld.scan(code, pause=0)
    page.wait_for_function("n => window.__kiosk.latencies.length > n", arg=before,
                           timeout=WAIT_MS)
    probe = dict(page.evaluate("n => window.__kiosk.latencies[n]", before))
    probe["ms"] = probe["painted_epoch_ms"] - started
    return probe


def shoot(page: Any, handheld: Handheld, codes: list[str], colour: str,
          artifacts: Path) -> None:
    """One screenshot per size, each of a fresh read."""
    for (label, size), code in zip(SIZES.items(), codes, strict=True):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        scan_and_paint(page, handheld, code)
        assert page.get_attribute("#result", "class") == colour
        page.screenshot(path=str(artifacts / f"kiosk-{colour}-{label}.png"))
    page.set_viewport_size({"width": 800, "height": 480})


def metric_values(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_a_handheld_code_turns_the_page_green_with_the_holders_name(
        page: Any, kiosk: Kiosk, handheld: Handheld, artifacts: Path) -> None:
    times = []
    for _ in range(3):
        code = kiosk.code()
        probe = scan_and_paint(page, handheld, code)
        assert probe["colour"] == "green"
        assert page.get_attribute("#result", "class") == "green"
        assert page.text_content("#word") == "VALID"
        assert page.text_content("#holder") == kiosk.holder(code)
        times.append(probe["ms"])
    print(f"\nhandheld write to green page under gate run: "
          f"{', '.join(f'{t:.0f}' for t in times)} ms (goal: 200 ms)")
    # The screenshots document the page as a steward sees it once the daemon's own sync
    # reached the API (a sync child starting on a loaded machine may take a while).
    page.wait_for_function(BADGE_IS, arg="ONLINE", timeout=LINK_WAIT_MS)
    shoot(page, handheld, [kiosk.code(), kiosk.code()], "green", artifacts)


def test_handheld_to_painted_latency_is_measured_over_thirty_reads(
        page: Any, kiosk: Kiosk, handheld: Handheld) -> None:
    probes = [scan_and_paint(page, handheld, kiosk.code()) for _ in range(LATENCY_SCANS)]
    assert [p["colour"] for p in probes] == ["green"] * LATENCY_SCANS
    total = [p["ms"] for p in probes]
    in_page = [p["painted_ms"] - p["recv_ms"] for p in probes]
    print(f"\nkiosk handheld-to-painted under gate run over {LATENCY_SCANS} reads: "
          f"p50 {statistics.median(total):.1f} ms, "
          f"p95 {statistics.quantiles(total, n=20)[-1]:.1f} ms "
          f"(SSE message to paint p95 {statistics.quantiles(in_page, n=20)[-1]:.1f} ms)")


def test_a_bad_code_turns_the_page_red_with_its_reason(
        page: Any, kiosk: Kiosk, handheld: Handheld, artifacts: Path) -> None:
    probe = scan_and_paint(page, handheld, "NOSUCHCODE123")
    assert page.get_attribute("#result", "class") == "red"
    assert page.text_content("#word") == "DENIED"
    row = next(r for r in kiosk.journal() if r["scan_id"] == probe["scan_id"])
    assert row["reason"] == "UNKNOWN_BARCODE"
    words = catalogue("en")
    assert page.text_content("#message") == words["reason.UNKNOWN_BARCODE.detail"]
    assert page.text_content("#next") == words["reason.UNKNOWN_BARCODE.next"]
    shoot(page, handheld, ["NOSUCHCODE456", "NOSUCHCODE789"], "red", artifacts)


def test_manual_entry_on_loopback_decides_without_a_pin(page: Any, kiosk: Kiosk) -> None:
    code = kiosk.code()
    page.fill("#barcode", code)
    page.click("#manual button")
    page.wait_for_function(CLASS_IS, arg="green", timeout=WAIT_MS)
    assert page.text_content("#holder") == kiosk.holder(code)
    assert [r["result"] for r in kiosk.journal() if r["barcode"] == code] == ["OK"]


def test_metrics_parse_and_match_the_journal(kiosk: Kiosk) -> None:
    text = loopback.get(f"{kiosk.url}/metrics", timeout=5).text
    rows = kiosk.journal()
    metrics = metric_values(text)
    decisions = {dict(k)["reason"]: v for k, v in metrics["gate_decisions_total"].items()}
    assert decisions == dict(Counter(r["reason"] for r in rows))
    handheld_scans = 3 + 2 + LATENCY_SCANS + 1 + 2
    assert metrics["gate_read_to_relay_seconds_count"][()] >= handheld_scans
    assert metrics["gate_decision_latency_seconds_count"][()] == len(rows)
    assert metrics["gate_reader_connected"][()] == 1
    assert metrics["gate_api_online"][()] == 1


def test_healthz_is_200_while_every_worker_beats(kiosk: Kiosk) -> None:
    answer = loopback.get(f"{kiosk.url}/healthz", timeout=5)
    assert answer.status_code == 200
    assert {k: answer.json()[k] for k in ("ok", "reasons")} == {"ok": True, "reasons": []}


def test_the_offline_badge_follows_the_simulator(page: Any, kiosk: Kiosk) -> None:
    page.wait_for_function(BADGE_IS, arg="ONLINE", timeout=WAIT_MS)
    kiosk.sim.stop()
    try:
        page.wait_for_function(BADGE_IS, arg="OFFLINE", timeout=LINK_WAIT_MS)
    finally:
        kiosk.sim.start()
    page.wait_for_function(BADGE_IS, arg="ONLINE", timeout=LINK_WAIT_MS)


def test_the_page_is_whole_again_after_gate_run_restarts(
        page: Any, kiosk: Kiosk, handheld: Handheld) -> None:
    granted_before = int(page.text_content("#c-in") or "0")
    kiosk.daemon.signal(signal.SIGTERM)
    page.wait_for_function("() => window.__kiosk.connected === false", timeout=WAIT_MS)
    kiosk.daemon = kiosk.start()
    page.wait_for_function("() => window.__kiosk.connected === true", timeout=LINK_WAIT_MS)
    code = kiosk.code()
    probe = scan_and_paint(page, handheld, code)
    assert probe["colour"] == "green"
    assert page.text_content("#holder") == kiosk.holder(code)
    page.wait_for_function("n => document.querySelector('#c-in').textContent === String(n)",
                           arg=granted_before + 1, timeout=WAIT_MS)


def test_manual_entry_beyond_loopback_needs_the_pin(
        tmp_path: Path, browser: Any, sim: SimServer) -> None:
    pin_file = tmp_path / "kiosk.pin"
    quick_pin_file(pin_file, PIN)
    handheld = Handheld()
    wide = Kiosk(tmp_path, sim, handheld,
                 web={"host": "0.0.0.0", "pin_file": str(pin_file), "status_open": True})
    try:
        code = wide.code()
        page = open_page(browser, wide.url)
        page.fill("#barcode", code)
        page.click("#manual button")
        page.wait_for_selector("#login[open]", timeout=WAIT_MS)
        assert not [r for r in wide.journal() if r["barcode"] == code]  # not before the PIN
        page.fill("#pin", PIN)
        page.click("#login-form button")
        page.wait_for_function(CLASS_IS, arg="green", timeout=WAIT_MS)
        assert [r["result"] for r in wide.journal() if r["barcode"] == code] == ["OK"]
        page.close()
    finally:
        wide.close()
        handheld.close()
