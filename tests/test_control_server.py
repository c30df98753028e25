"""The control room's server beyond loopback, by the kiosk's own code: the PIN opens a
session the read-only routes need, the login takes only JSON of this origin, and repeated
wrong PINs lock the address out (tests/test_control_page.py: the page on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from kits import loopback
from kits.kiosk import KioskGate, free_port, quick_pin_file

from scanner.config.zones import venue
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.errors import ConfigError
from scanner.kiosk import WebOptions
from scanner.kiosk.auth import MAX_FAILURES
from scanner.sim import SimServer


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[ControlServer]:
    """The control room bound to every address, with a PIN file."""
    pin = tmp_path / "control.pin"
    quick_pin_file(pin, "4711")
    server = ControlServer(VenueView(venue(), tz=UTC), host="0.0.0.0", pin_file=str(pin))
    server.start()
    yield server
    server.stop()


def test_beyond_loopback_the_venue_needs_the_pin(exposed: ControlServer) -> None:
    with loopback.client(base_url=exposed.url, timeout=5) as client:
        assert client.get("/api/venue").status_code == 401
        assert client.get("/api/zones").status_code == 401
        assert client.get("/api/commands").status_code == 401  # the zones' names too
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200  # the page itself, to log in from
        assert client.post("/api/login", json={"pin": "0000"}).status_code == 401
        answer = client.post("/api/login", json={"pin": "4711"})
        assert answer.status_code == 200
        assert "HttpOnly" in answer.headers["set-cookie"]
        assert client.get("/api/venue").status_code == 200


def test_a_kiosk_and_the_control_room_on_one_host_keep_each_others_sessions(
        exposed: ControlServer, tmp_path: Path, sim_server: SimServer) -> None:
    """A browser sends a host's cookies to all its ports: one logged into a gate's page and
    the control room stays logged into both."""
    pin = tmp_path / "kiosk.pin"
    quick_pin_file(pin, "2468")
    web = WebOptions(host="0.0.0.0", port=free_port(), pin_file=str(pin))
    with KioskGate(tmp_path / "gate", sim_server, web) as gate, \
            loopback.client(timeout=5) as browser:
        kiosk, room = gate.url, exposed.url
        assert browser.post(f"{kiosk}/api/login", json={"pin": "2468"}).status_code == 200
        assert browser.post(f"{room}/api/login", json={"pin": "4711"}).status_code == 200
        assert len({cookie.name for cookie in browser.cookies.jar}) == 2
        assert browser.get(f"{kiosk}/api/status").status_code == 200
        assert browser.get(f"{room}/api/venue").status_code == 200


def test_the_login_takes_only_json_of_this_origin(exposed: ControlServer) -> None:
    """The kiosk's login route: a cross-site form can send neither."""
    with loopback.client(base_url=exposed.url, timeout=5) as client:
        assert client.post("/api/login", data={"pin": "4711"}).status_code == 415
        assert client.post("/api/login", json={"pin": "4711"},
                           headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.get("/api/venue").status_code == 401


def test_a_session_cookie_of_non_ascii_bytes_is_no_session(exposed: ControlServer) -> None:
    """With a session live, a cookie no token can be is refused as none, not a fault."""
    with loopback.client(base_url=exposed.url, timeout=5) as client:
        assert client.post("/api/login", json={"pin": "4711"}).status_code == 200
    cookie = {"Cookie": "control_session=\xe9".encode("latin-1")}
    assert loopback.get(f"{exposed.url}/api/venue", headers=cookie).status_code == 401


def test_repeated_wrong_pins_lock_the_address_out(exposed: ControlServer) -> None:
    with loopback.client(base_url=exposed.url, timeout=5) as client:
        codes = [client.post("/api/login", json={"pin": f"{n:04d}"}).status_code
                 for n in range(MAX_FAILURES + 1)]
        assert codes[:MAX_FAILURES] == [401] * MAX_FAILURES
        assert codes[-1] == 429
        locked = client.post("/api/login", json={"pin": "4711"})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0


@pytest.mark.parametrize("host", ["::1", "127.0.0.2", "::"])
def test_the_control_rooms_url_reaches_it_wherever_it_listens(host: str) -> None:
    """The URL ``gate control`` logs is one this machine can open."""
    server = ControlServer(VenueView(venue(), tz=UTC), host=host)
    server.start()
    try:
        assert loopback.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()


def test_gate_control_on_a_port_taken_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from scanner.cli.main import main

    key = tmp_path / "venue.key"
    key.write_text("k" * 32)
    key.chmod(0o600)
    monkeypatch.setenv("GATE_API_TOKEN", "unused-token")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "control.toml"
        config.write_text(f'gate_id = "control"\n[web]\nport = {port}\n[mesh]\n'
                          f'url = "mqtt://127.0.0.1:1"\nkey_file = "{key}"\n')
        assert main(["--config", str(config), "control"]) == 2
    assert capsys.readouterr().err == (f"gate: configuration error: web: cannot listen on "
                                       f"127.0.0.1:{port}: Address already in use\n")


# -- the command buttons' configuration ------------------------------------------------------

def command_config(tmp_path: Path, *, pin: bool, creds_mode: int = 0o600) -> Any:
    from scanner.config import ControlConfig, GateConfig, MeshConfig, WebConfig
    from scanner.venue.signing import keygen

    private, _public = keygen(tmp_path / "keys")
    files = {"mesh.key": "k" * 32, "supervisor.creds": "supervisor:secret"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o600)
    (tmp_path / "supervisor.creds").chmod(creds_mode)
    if pin:
        quick_pin_file(tmp_path / "supervisor.pin", "97531")
    return GateConfig(
        mesh=MeshConfig(url="mqtt://127.0.0.1:1", key_file=str(tmp_path / "mesh.key")),
        web=WebConfig(supervisor_pin_file=str(tmp_path / "supervisor.pin")),
        control=ControlConfig(supervisor_key_file=str(private),
                              credentials_file=str(tmp_path / "supervisor.creds")))


def test_a_supervisor_key_without_a_supervisor_pin_is_refused_at_start(tmp_path: Path) -> None:
    from scanner.app.control import commands

    with pytest.raises(ConfigError, match=r"^web.supervisor_pin_file: no supervisor PIN"):
        commands(command_config(tmp_path, pin=False))
    assert commands(command_config(tmp_path / "with", pin=True)) is not None


def test_the_command_credentials_are_named_by_their_own_key(tmp_path: Path) -> None:
    from scanner.app.control import commands

    with pytest.raises(ConfigError, match=r"^control.credentials_file"):
        commands(command_config(tmp_path, pin=True, creds_mode=0o644))


def test_a_flood_of_venue_and_zone_requests_reads_the_view_once_per_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request built the whole venue anew on the observer's interpreter; now a reading
    serves every asker until the venue changes (or a second passes: longer here, so a slow
    machine's requests all fall within it)."""
    from datetime import datetime

    from scanner.control.routes import Reading
    from scanner.mesh.message import Status

    monkeypatch.setattr(Reading, "FRESH", 600.0)

    view = VenueView(venue(), tz=UTC)
    reads = []  # the zone book read, the costly part of both answers
    book_snapshot = view.book.snapshot

    def counted(now: datetime) -> dict[str, Any]:
        reads.append(now)
        return book_snapshot(now)

    view.book.snapshot = counted  # type: ignore[method-assign]
    server = ControlServer(view)
    server.start()
    try:
        with loopback.client(base_url=server.url, timeout=5) as client:
            for _ in range(20):
                assert client.get("/api/venue").status_code == 200
                assert client.get("/api/zones").status_code == 200
            assert client.get("/metrics").status_code == 200
            assert len(reads) == 2  # one reading of the venue, one of the zones (41 before)
            view.status(Status("north-1", 3, True), datetime.now(UTC))
            gates = client.get("/api/venue").json()["gates"]
            assert [g["gate"] for g in gates] == ["north-1"]  # the change, at once
            assert len(reads) == 3
    finally:
        server.stop()
