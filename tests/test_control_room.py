"""The control room on a real mosquitto: an observer hears two gates (no lanes, no uploads)
and its page in Chromium lists both gates and their zones, updating within a second of a
scan; the gates' own zone counts equal the page's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kits import loopback
from kits.browser import needs_chromium
from kits.kiosk import free_port
from kits.mesh import KEY, Broker, MeshGate, wait_for
from kits.waiting import within_a_second

from scanner.config import toml
from scanner.config.zones import parse_zones
from scanner.control.observer import Observer
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.decide.model import Direction
from scanner.mesh.localbroker import password
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
        observer.close()
        for g in gates:
            g.close()
        broker.stop()


@pytest.mark.slow
def test_the_page_shows_every_gate_and_a_scan_within_a_second(room: Any,
                                                              browser: Any) -> None:
    (_, b), _, server = room
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(server.url)
    page.wait_for_selector("#gates tr[data-gate='B']", timeout=10000)
    assert page.locator("#gates tbody tr").count() == 2
    assert page.locator("#zones [data-zone]").count() == 2
    inside = "z => document.querySelector(`[data-zone='${z[0]}'] .count`)?.dataset.inside === z[1]"

    def scan(n: int) -> float:
        started = time.monotonic()
        assert b.check(n).decision.granted
        page.wait_for_function(inside, arg=["lounge", str(n)], timeout=5000)
        return time.monotonic() - started

    seconds, scans = within_a_second(scan, tries=3)
    assert seconds < 1.0
    assert page.locator("[data-zone='grounds'] .count").get_attribute("data-inside") == \
        str(scans)
    assert page.locator("#gates tr[data-gate='B'] td").nth(1).inner_text() == "lounge"
    page.close()


def gate_zones_json(g: MeshGate, tmp_path: Path) -> list[dict[str, Any]]:
    """``gate zones --json`` run as an operator would, on the gate's own files."""
    key = tmp_path / "venue.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    config = tmp_path / f"{g.gate_id}.toml"
    config.write_text(toml.dumps({
        "gate_id": g.gate_id, "db": g.gate.config.db, "zone": "grounds",
        "mesh": {"url": "mqtt://127.0.0.1:1", "key_file": str(key), "minter": "A"},
        "zones": TABLES}), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                           "zones", "--json"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GATE_API_TOKEN": "unused-token"})
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = orjson.loads(done.stdout)
    return result


@pytest.mark.slow
def test_the_gates_counts_equal_the_page(room: Any, browser: Any, tmp_path: Path) -> None:
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
    api = {z["id"]: z["inside"] for z in loopback.get(f"{server.url}/api/zones", timeout=5).json()}
    for g in (a, b):
        assert wait_for(lambda g=g: g.zones.counts(g.gate.clock()) == shown)
    assert api == shown == {"grounds": 4, "lounge": 0}
    page.close()
    printed = gate_zones_json(a, tmp_path)
    assert {z["id"]: z["inside"] for z in printed} == shown
    assert {z["id"]: z["capacity"] for z in printed} == {"grounds": 50, "lounge": 5}


def test_gate_control_serves_the_venue_from_its_own_process(room: Any, tmp_path: Path) -> None:
    """``gate control`` as systemd would run it: its own configuration, its own mesh user,
    its page on a free port, stopped by SIGTERM."""
    (a, _), _, _ = room
    port = free_port()
    key = tmp_path / "venue.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    creds = tmp_path / "control.creds"
    creds.write_text(f"control:{password('control')}\n", encoding="utf-8")
    creds.chmod(0o600)
    config = tmp_path / "control.toml"
    config.write_text(toml.dumps({
        "gate_id": "control", "web": {"port": port},
        "mesh": {"url": a.link.settings.url, "key_file": str(key),
                 "credentials_file": str(creds), "minter": "A"},
        "zones": [{"id": "grounds", "capacity": 50},
                  {"id": "lounge", "parent": "grounds", "capacity": 5}]}), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                             "control"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "GATE_API_TOKEN": "unused-token"})
    try:
        url = f"http://127.0.0.1:{port}"

        def gates() -> list[str]:
            try:
                doc = loopback.get(f"{url}/api/venue", timeout=1).json()
            except (httpx.HTTPError, ValueError):
                return []
            return [g["gate"] for g in doc["gates"]]

        assert wait_for(lambda: gates() == ["A", "B"], 20), proc.stderr
        assert a.check(3).decision.granted
        assert wait_for(lambda: {z["id"]: z["inside"] for z in loopback.get(
            f"{url}/api/zones", timeout=1).json()}["grounds"] == 1)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
