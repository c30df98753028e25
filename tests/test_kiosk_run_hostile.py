"""A hostile client against the page of a real ``gate run`` (a subprocess bound beyond
loopback with a PIN, against the simulator): a flood of wrong PINs keeps its memory
bounded, and resets, garbage and bad bodies leave no traceback in its log."""

from __future__ import annotations

import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits import loopback
from kits.kiosk import free_port
from kits.sim import SIM_TOKEN
from test_kiosk_e2e import Kiosk
from test_kiosk_hostile import WRONG, at_once
from test_run_e2e import Handheld

from scanner.kiosk.auth import MAX_FAILURES, write_pin_file
from scanner.sim import SimServer, World

PIN = "4711"
# Two scrypt hashes (16 MiB each) and what a few dozen requests hold; the unbounded server
# grew by over 1 GB under the same flood.
MAX_GROWTH = 100 * 2**20

# One `gate run` serves the module: on one worker it starts once, not once per worker that
# happens to draw one of these tests.
pytestmark = pytest.mark.xdist_group("kiosk-run-hostile")


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    root = tmp_path_factory.mktemp("hostile")
    pin_file = root / "kiosk.pin"
    write_pin_file(pin_file, PIN)
    handheld = Handheld()
    with SimServer(World(seed=7, events=1, tickets_per_event=200), token=SIM_TOKEN,
                   port=free_port()) as sim:
        kiosk = Kiosk(root, sim, handheld,
                      web={"host": "0.0.0.0", "pin_file": str(pin_file), "status_open": True})
        try:
            yield kiosk
        finally:
            kiosk.close()
            handheld.close()


def peak_rss(pid: int) -> int:
    """The process's high-water resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_150_concurrent_wrong_pins_keep_gate_runs_memory_bounded(wide: Kiosk) -> None:
    pid = wide.daemon.proc.pid
    before = peak_rss(pid)
    answers = at_once([(WRONG, "127.0.0.1")] * 150, wide.url)
    grown = peak_rss(pid) - before
    print(f"\n150 concurrent wrong PINs: {dict(answers)}, peak RSS grew by "
          f"{grown / 2**20:.1f} MiB")
    assert answers[401] <= MAX_FAILURES, answers
    assert grown < MAX_GROWTH
    assert loopback.get(f"{wide.url}/healthz", timeout=5).status_code == 200


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a client that vanished."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_resets_garbage_and_bad_bodies_leave_no_traceback(wide: Kiosk) -> None:
    port = int(wide.url.rsplit(":", 1)[1])
    host = f"Host: 127.0.0.1:{port}\r\n"
    json_post = (f"POST /api/scan HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
                 "Content-Length: {}\r\n\r\n")

    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    def send(data: bytes, *, then_reset: bool = True, read: bool = False) -> None:
        sock = connect()
        sock.sendall(data)
        if read:
            sock.recv(256)
        if then_reset:
            reset(sock)
        else:
            sock.close()

    log_before = wide.daemon.log()
    send(json_post.format(100).encode() + b'{"barc')                  # reset mid-body
    send(json_post.format(9).encode() + b"{not json")                 # bad JSON, then reset
    send(json_post.format(9).encode() + b"{not json", then_reset=False, read=True)
    send(f"GET /events HTTP/1.1\r\n{host}\r\n".encode(), read=True)   # reset mid-stream
    send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), read=True)  # TLS hello
    send(f"GET / HTTP/1.1\r\n{host}X-Big: {'a' * 20000}\r\n\r\n".encode(), read=True)
    send(f"POST /api/scan HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
         "Content-Length: abc\r\n\r\n".encode(), read=True)
    send(b"GET /healthz HTTP/1.0\r\n\r\n", read=True)                 # no Host at all
    send(f"GET /healthz HTTP/1.1\r\n{host}".encode())                 # reset mid-headers
    half = connect()
    half.sendall(json_post.format(100).encode() + b"{")
    half.shutdown(socket.SHUT_WR)                                     # half-closed mid-body
    half.recv(256)
    half.close()
    time.sleep(1.0)  # what the server logs about them, it has logged by now
    assert loopback.get(f"{wide.url}/healthz", timeout=5).status_code == 200
    added = wide.daemon.log()[len(log_before):]
    print(f"\nlogged:\n{added}")
    assert "Traceback" not in added and 'File "' not in added, added


@pytest.mark.slow
def test_gate_run_stops_cleanly_with_a_stream_open(wide: Kiosk) -> None:
    with loopback.stream("GET", f"{wide.url}/events", timeout=10) as stream:
        first = next(stream.iter_bytes())
        assert first.startswith(b"retry:")
        assert wide.daemon.signal(signal.SIGTERM) == 0, wide.daemon.log()
    assert "Traceback" not in wide.daemon.log()
    wide.daemon = wide.start()
