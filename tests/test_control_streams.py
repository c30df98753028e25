"""A flood of the control room's event streams, over real sockets on loopback: as many as
the server takes (from several loopback addresses, each under the per-address cap) hold no
worker thread while they wait, so the other routes still answer, and stopping the server
ends every one of them without a line above debug in the log."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kits import loopback

from scanner.config.zones import venue
from scanner.control.server import ControlServer
from scanner.control.view import VenueView
from scanner.kiosk.httpd import MAX_PER_ADDRESS
from scanner.mesh.message import Health

STREAMS = 150
# anyio's default worker threads: a stream holding one while it waits would take them all.
WORKERS = 40


def health(n: int) -> Health:
    return Health(f"north-{n}", "venue", "0.1.0", "2026-12-07T12:00:00Z",
                  {"entry": True}, n, ())


@pytest.fixture
def room() -> Iterator[tuple[ControlServer, VenueView]]:
    view = VenueView(venue(), tz=UTC)
    server = ControlServer(view)
    server.start()
    yield server, view
    server.stop()


def open_streams(server: ControlServer) -> list[socket.socket]:
    """STREAMS event streams, each once its first frame came."""
    streams = []
    per_address = MAX_PER_ADDRESS - 2
    for i in range(STREAMS):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30,
                                        source_address=(f"127.0.0.{2 + i // per_address}", 0))
        sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
                     .encode())
        streams.append(sock)
    for sock in streams:
        until(sock, b"data: ")
    return streams


def until(sock: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before {marker!r}"
        got += chunk
    return got


def test_open_streams_hold_no_worker_thread_and_the_room_still_answers(
        room: tuple[ControlServer, VenueView]) -> None:
    server, view = room
    before = threading.active_count()
    streams = open_streams(server)
    try:
        for n in range(3):  # changes: every stream sends the venue again
            view.health(health(n), datetime.now(UTC))
            for sock in streams:
                until(sock, b"north-%d" % n)
        assert threading.active_count() - before < WORKERS // 4
        answer = loopback.get(f"{server.url}/healthz", timeout=30)
        assert answer.status_code == 200
    finally:
        for sock in streams:
            sock.close()


def test_stopping_with_every_stream_open_ends_them_all_without_a_warning(
        room: tuple[ControlServer, VenueView], caplog: pytest.LogCaptureFixture) -> None:
    server, _view = room
    streams = open_streams(server)
    caplog.set_level(logging.DEBUG)
    server.stop()
    try:
        for sock in streams:
            while sock.recv(65536):
                pass  # to the end of the stream: recv() gives b"" there
    finally:
        for sock in streams:
            sock.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
