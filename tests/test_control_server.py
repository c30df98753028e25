"""The control room's server beyond loopback, by the kiosk's own code: the PIN opens a
session the read-only routes need, the login takes only JSON of this origin, and repeated
wrong PINs lock the address out (tests/test_control_page.py: the page on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import httpx
import pytest

from scanner.config.zones import venue
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.kiosk.auth import MAX_FAILURES, write_pin_file


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[ControlServer]:
    """The control room bound to every address, with a PIN file."""
    pin = tmp_path / "control.pin"
    write_pin_file(pin, "4711")
    server = ControlServer(VenueView(venue(), tz=UTC), host="0.0.0.0", pin_file=str(pin))
    server.start()
    yield server
    server.stop()


def test_beyond_loopback_the_venue_needs_the_pin(exposed: ControlServer) -> None:
    with httpx.Client(base_url=exposed.url, timeout=5) as client:
        assert client.get("/api/venue").status_code == 401
        assert client.get("/api/zones").status_code == 401
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200  # the page itself, to log in from
        assert client.post("/api/login", json={"pin": "0000"}).status_code == 401
        answer = client.post("/api/login", json={"pin": "4711"})
        assert answer.status_code == 200
        assert "HttpOnly" in answer.headers["set-cookie"]
        assert client.get("/api/venue").status_code == 200


def test_the_login_takes_only_json_of_this_origin(exposed: ControlServer) -> None:
    """The kiosk's login route: a cross-site form can send neither."""
    with httpx.Client(base_url=exposed.url, timeout=5) as client:
        assert client.post("/api/login", data={"pin": "4711"}).status_code == 415
        assert client.post("/api/login", json={"pin": "4711"},
                           headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.get("/api/venue").status_code == 401


def test_repeated_wrong_pins_lock_the_address_out(exposed: ControlServer) -> None:
    with httpx.Client(base_url=exposed.url, timeout=5) as client:
        codes = [client.post("/api/login", json={"pin": f"{n:04d}"}).status_code
                 for n in range(MAX_FAILURES + 1)]
        assert codes[:MAX_FAILURES] == [401] * MAX_FAILURES
        assert codes[-1] == 429
        locked = client.post("/api/login", json={"pin": "4711"})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
