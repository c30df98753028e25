"""The kiosk under attack, over real HTTP on loopback: floods of wrong PINs from one address
and from many, DNS rebinding, slow clients, and the one loopback rule. Addresses
127.0.0.2 and up stand for other machines on the venue's LAN where a test says so (a
lockout that takes only 127.0.0.1 as the gate's own screen); traffic never leaves this
machine."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from kits import loopback
from kits.kiosk import KioskGate, free_port, quick_pin_file
from test_config_tables import load_text

from scanner.decide.model import Direction
from scanner.kiosk import KioskServer, WebOptions
from scanner.kiosk.auth import GLOBAL_FAILURES, MAX_FAILURES, Lockout, write_pin_file
from scanner.kiosk.httpd import (
    LOCAL_RESERVE,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    REQUEST_TIMEOUT,
)
from scanner.netrules import is_loopback
from scanner.sim import SimServer

PIN = "4711"
WRONG = "0000"
SCREEN = "127.0.0.1"  # the gate's own screen, in the tests that take 127.0.0.x as a LAN


def remote_lan(address: str) -> bool:
    return address == SCREEN


@pytest.fixture
def lan(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    """A kiosk bound beyond loopback with a PIN, whose lockout takes only 127.0.0.1 as the
    gate's own screen, so 127.0.0.2 and up are other machines."""
    pin_file = tmp_path / "kiosk.pin"
    write_pin_file(pin_file, PIN)
    with KioskGate(tmp_path, sim_server,
                   WebOptions(host="0.0.0.0", port=free_port(), pin_file=str(pin_file)),
                   lockout=Lockout(local=remote_lan)) as gate:
        yield gate


def login(url: str, pin: str, source: str = "127.0.0.1") -> int | str:
    """The status of one login from ``source``, or "dropped" when the server cut it. A
    few lines of HTTP/1.1 on a socket: a flood of clients that each build an SSL context
    would test the client's CPU, not the server."""
    port = int(url.rsplit(":", 1)[1])
    body = orjson.dumps({"pin": pin})
    request = (f"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close"
               "\r\n\r\n").encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30,
                                      source_address=(source, 0)) as sock:
            sock.sendall(request)
            head = sock.recv(64)
    except OSError:
        return "dropped"
    return int(head.split()[1]) if head else "dropped"


def at_once(calls: list[tuple[str, str]], url: str) -> Counter[int | str]:
    """Each (pin, source) login on its own thread, all released together."""
    gate = threading.Barrier(len(calls))
    out: Counter[int | str] = Counter()
    lock = threading.Lock()

    def one(pin: str, source: str) -> None:
        gate.wait()
        status = login(url, pin, source)
        with lock:
            out[status] += 1

    threads = [threading.Thread(target=one, args=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


# -- PINs ---------------------------------------------------------------------------------


def test_a_lockout_counts_concurrent_attempts_before_any_is_checked() -> None:
    lockout = Lockout(local=lambda _a: False)
    gate = threading.Barrier(50)
    reserved: list[float] = []

    def attempt() -> None:
        gate.wait()
        reserved.append(lockout.reserve("10.0.0.9"))

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert reserved.count(0.0) == MAX_FAILURES
    assert lockout.retry_after("10.0.0.9") > 0


def test_150_concurrent_wrong_pins_from_one_address_test_five_in_all(lan: KioskGate) -> None:
    answers = at_once([(WRONG, "127.0.0.2")] * 150, lan.url)
    assert set(answers) <= {401, 429, 503, "dropped"}, answers
    # One at a time after the flood: what it left of the budget, then the lock.
    after = [login(lan.url, WRONG, "127.0.0.2") for _ in range(MAX_FAILURES + 1)]
    assert answers[401] + after.count(401) == MAX_FAILURES, (answers, after)  # PINs hashed
    assert after[-1] == 429
    assert login(lan.url, PIN, "127.0.0.2") == 429  # even the right one, for now


def test_wrong_pins_over_25_addresses_are_held_to_the_global_budget(lan: KioskGate) -> None:
    def four_each(n: int, out: Counter[int | str]) -> None:
        for _ in range(4):  # under the per-address limit: only the global budget holds them
            out[login(lan.url, WRONG, f"127.0.0.{n}")] += 1

    answers: Counter[int | str] = Counter()
    threads = [threading.Thread(target=four_each, args=(n, answers)) for n in range(2, 27)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(answers.values()) == 100
    assert answers[401] <= GLOBAL_FAILURES, answers
    assert answers[429] >= 100 - GLOBAL_FAILURES - answers[503], answers


def test_the_gates_own_screen_and_this_shifts_steward_log_in_while_others_are_locked_out(
        lan: KioskGate) -> None:
    steward = "127.0.0.30"
    assert login(lan.url, PIN, steward) == 200  # earlier in the shift
    for n in range(2, 2 + GLOBAL_FAILURES):
        assert login(lan.url, WRONG, f"127.0.0.{n}") == 401
    assert login(lan.url, PIN, "127.0.0.40") == 429  # a newcomer waits, right PIN or not
    assert login(lan.url, PIN, steward) == 200
    assert login(lan.url, PIN, SCREEN) == 200


def test_a_loopback_client_is_the_local_screen_by_default() -> None:
    lockout = Lockout()
    for n in range(GLOBAL_FAILURES):
        assert lockout.reserve(f"10.0.0.{n}") == 0.0
    assert lockout.reserve("10.0.0.200") > 0
    assert lockout.reserve("127.0.0.1") == 0.0 and lockout.reserve("::1") == 0.0


# -- Host ---------------------------------------------------------------------------------


ROUTES = [("GET", "/"), ("GET", "/static/kiosk.js"), ("GET", "/events"), ("GET", "/api/state"),
          ("GET", "/api/status"), ("GET", "/healthz"), ("GET", "/metrics"),
          ("POST", "/api/login"), ("POST", "/api/scan"), ("POST", "/api/direction"),
          ("POST", "/api/annul")]
BODIES = {"/api/login": {"pin": PIN}, "/api/direction": {"direction": "OUT"},
          "/api/annul": {"scan_id": "x"}}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_rebinding_host_is_refused_on_every_route(kg: KioskGate, method: str,
                                                     path: str) -> None:
    port = kg.kiosk.port
    evil = f"rebind.evil.example:{port}"
    body = BODIES.get(path, {"barcode": kg.valid_barcodes(1)[0]}) if method == "POST" else None
    for host in (evil, "rebind.evil.example", f"localhost.evil.example:{port}", ""):
        reply = loopback.request(method, kg.url + path, json=body, timeout=5,
                              headers={"Host": host, "Origin": f"http://{host}"})
        assert reply.status_code == 421, (host, reply.text)
    assert list(kg.gate.journal.entries()) == []
    assert kg.kiosk.direction is Direction.IN


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "[::1]",
                                  "localhost."])
def test_a_loopback_host_with_the_port_is_served(kg: KioskGate, host: str) -> None:
    port = kg.kiosk.port
    assert loopback.get(kg.url + "/healthz", headers={"Host": f"{host}:{port}"}).status_code == 200
    assert loopback.get(kg.url + "/healthz", headers={"Host": f"{host}:{port + 1}"}) \
        .status_code == 421


# -- slow clients -------------------------------------------------------------------------


def dropped(sock: socket.socket, within: float) -> bool:
    """True once the server closed ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.slow
def test_slow_clients_are_dropped_and_hold_neither_threads_nor_the_page(kg: KioskGate) -> None:
    port = kg.kiosk.port
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    trickle = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
    trickle.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
    slow_body = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.3", 0))
    slow_body.sendall(f"POST /api/scan HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                      "application/json\r\nContent-Length: 100\r\n\r\n{".encode())
    started = time.monotonic()
    time.sleep(0.5)
    try:
        # Beyond MAX_PER_ADDRESS from one address, a connection is closed at once.
        assert sum(dropped(s, 0.05) for s in idle) >= 100 - MAX_PER_ADDRESS
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.4")) as other:
            reply = other.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert reply.status_code == 200  # the page is still served meanwhile
        assert threading.active_count() - threads_before < 10
        for _ in range(int(REQUEST_TIMEOUT) + 2):  # trickling does not extend the deadline
            try:
                trickle.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            if dropped(trickle, 1.0):
                break
        assert dropped(trickle, 5) and dropped(slow_body, 5)
        assert all(dropped(s, 5) for s in idle)
        assert REQUEST_TIMEOUT - 1 <= time.monotonic() - started <= REQUEST_TIMEOUT + 8
    finally:
        for s in (*idle, trickle, slow_body):
            s.close()


@pytest.mark.parametrize("upgrade", ["websocket", "h2c"])
def test_a_request_to_upgrade_is_answered_over_http_without_a_warning(
        kg: KioskGate, upgrade: str, caplog: pytest.LogCaptureFixture) -> None:
    port = kg.kiosk.port
    caplog.set_level(logging.DEBUG)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: "
                     f"Upgrade\r\nUpgrade: {upgrade}\r\nSec-WebSocket-Key: "
                     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        assert answered(sock) == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def answered(sock: socket.socket) -> int | None:
    """The status a stream's server answered, None when it cut the connection."""
    try:
        head = sock.recv(64)
    except OSError:
        return None
    return int(head.split()[1]) if head else None


def test_streams_from_the_lan_leave_the_gates_own_screen_its_page(
        tmp_path: Path, sim_server: SimServer) -> None:
    """With the status open to the LAN, as many event streams as other machines can hold
    open (each address under its cap) still leave the gate's own screen its page, its
    stream and the health check its launcher waits on."""
    web = WebOptions(host="0.0.0.0", port=free_port(), pin_file=str(tmp_path / "kiosk.pin"),
                     status_open=True)
    with KioskGate(tmp_path, sim_server, web, lockout=Lockout(local=remote_lan)) as kg:
        port = kg.kiosk.port
        request = f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        streams = []
        try:
            for i in range(MAX_CONNECTIONS):
                source = f"127.0.0.{2 + i // (MAX_PER_ADDRESS - 2)}"
                sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                                source_address=(source, 0))
                sock.sendall(request)
                streams.append(sock)
            held = sum(answered(sock) == 200 for sock in streams)
            assert held == MAX_CONNECTIONS - LOCAL_RESERVE
            with loopback.client(base_url=kg.url, timeout=30) as screen:
                assert screen.get("/healthz").status_code == 200
                assert screen.get("/").status_code == 200
                with screen.stream("GET", "/events") as stream:
                    assert stream.status_code == 200
        finally:
            for sock in streams:
                sock.close()


# -- garbage headers ----------------------------------------------------------------------


def faults(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_session_cookie_of_non_ascii_bytes_is_no_session(
        kg: KioskGate, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With a steward logged in, a cookie no token can be ("é", sent as one Latin-1
    byte) is answered as no session: 401 on the steward's routes, never a fault."""
    quick_pin_file(tmp_path / "kiosk.pin", PIN)
    kg.restart_kiosk()
    caplog.set_level(logging.DEBUG)
    assert loopback.post(kg.url + "/api/login", json={"pin": PIN}).status_code == 200
    cookie = {"Cookie": "gate_session=\xe9\xe9".encode("latin-1")}
    assert loopback.post(kg.url + "/api/direction", json={"direction": "OUT"},
                         headers=cookie).status_code == 401
    desk = loopback.get(kg.url + "/api/desk", headers=cookie)
    assert desk.status_code == 200 and desk.json()["role"] is None
    assert kg.kiosk.direction is Direction.IN
    assert faults(caplog) == []


@pytest.mark.parametrize("origin", ["http://[", "http://[::1", "http://a]b", "http://[x]:1"])
def test_an_origin_no_parser_takes_is_refused_as_cross_origin(
        kg: KioskGate, origin: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reply = loopback.post(kg.url + "/api/scan", json={"barcode": kg.valid_barcodes(1)[0]},
                          headers={"Origin": origin})
    assert reply.status_code == 403, reply.text
    assert list(kg.gate.journal.entries()) == []
    assert faults(caplog) == []


def test_a_path_of_control_characters_is_logged_escaped(
        kg: KioskGate, caplog: pytest.LogCaptureFixture) -> None:
    """A path decoded from %1b and %0a could rewrite the operator's terminal or forge a log
    line of its own; it is logged as printable escapes."""
    port = kg.kiosk.port
    caplog.set_level(logging.DEBUG, logger="scanner.kiosk")
    for host in (f"127.0.0.1:{port}", "rebind.evil.example"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET /%1b]2;owned%07%0aERROR%20scanner.act:%20forged HTTP/1.1\r\n"
                         f"Host: {host}\r\nConnection: close\r\n\r\n".encode())
            assert answered(sock) in (404, 421)
    logged = [r.getMessage() for r in caplog.records if r.name == "scanner.kiosk"]
    assert len([m for m in logged if "forged" in m]) == 2, logged
    assert all(m.isprintable() for m in logged), logged


def test_a_fault_is_one_log_line_and_a_json_answer(
        kg: KioskGate, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("status exploded")

    kg.kiosk.stop()
    faulty = KioskServer(WebOptions(port=free_port()),
                         dataclasses.replace(kg.kiosk.parts, status=broken)).start()
    caplog.set_level(logging.DEBUG)
    try:
        reply = loopback.get(faulty.url + "/api/status", timeout=5)
    finally:
        faulty.stop()
    assert reply.status_code == 500
    assert reply.json() == {"error": "the kiosk failed on this request"}
    assert faults(caplog) == ["kiosk GET /api/status: RuntimeError: status exploded"]
    assert not any(r.exc_info for r in caplog.records)


# -- one loopback rule --------------------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("localhost.", True), ("LocalHost.", True),
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("gate.local", False), ("localhost.evil", False),
    ("10.0.0.1", False), ("", False), ("[::ffff:10.0.0.1]", False),
    ("::ffff:127.0.0.1", True), ("[::ffff:127.0.0.9]", True),
])
def test_one_loopback_rule(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_bound_to_every_ipv6_address_the_gates_own_screen_still_logs_in(
        tmp_path: Path, sim_server: SimServer) -> None:
    """Bound to "::", the kiosk sees its own screen (127.0.0.1) as ::ffff:127.0.0.1: still
    this machine, so others spending the global budget of wrong PINs lock it not out."""
    pin_file = tmp_path / "kiosk.pin"
    quick_pin_file(pin_file, PIN)
    with KioskGate(tmp_path, sim_server, WebOptions(host="::", port=free_port(),
                                                    pin_file=str(pin_file))) as gate:
        for n in range(GLOBAL_FAILURES):  # wrong PINs from the LAN, as the login counts them
            assert gate.kiosk.lockout.reserve(f"10.0.0.{n}") == 0.0
        assert gate.kiosk.lockout.reserve("10.0.0.200") > 0
        assert login(gate.url, PIN, SCREEN) == 200


def test_localhost_in_capitals_is_loopback_for_the_config_and_the_kiosk(
        tmp_path: Path, sim_server: SimServer) -> None:
    config = load_text(tmp_path, '[web]\nhost = "LOCALHOST"\n')  # no pin_file: loopback
    gate = KioskGate(tmp_path, sim_server, WebOptions(host=config.web.host, port=free_port(),
                                                      pin_file=str(tmp_path / "none")))
    try:
        kiosk: KioskServer = gate.kiosk
        assert kiosk.login_required is False
        barcode = gate.valid_barcodes(1)[0]
        reply = loopback.post(f"http://localhost:{kiosk.port}/api/scan", json={"barcode": barcode},
                           headers={"Host": f"LOCALHOST:{kiosk.port}"})
        assert reply.status_code == 200 and reply.json()["granted"] is True
    finally:
        gate.close()
