"""A vivenu-shaped server on loopback that misbehaves on purpose (no tests here).

It answers ``/api/accessusers/me``, ``/events`` and ``/tickets/v2/{event}`` over real HTTP,
with a real ``Date`` header, and its ``mode`` says how it lies or stalls:

- ``ok``:       serve ``docs`` as vivenu would (``from <= updatedAt < until``, top/skip)
- ``drip``:     headers, then one byte of the body every ``drip_every`` seconds, forever
                (for ticket pages; ``stall_all``: for every request), for ``stall_for`` s
- ``hang``:     headers, then nothing until the server stops (as ``drip``)
- ``huge``:     a page of ``huge_bytes`` bytes, streamed in chunks (never held in memory)
- ``growing``:  the listing's ``total`` grows by ``grow_by`` tickets on every request
- ``repeat``:   ``skip`` ignored: every request gets the listing's first page again
- ``wrap``:     pages past the end of the listing wrap round to its start, and are full
- ``cut``:      the listing ends after ``cut_at`` tickets, its total still counting all
- ``unstable``: the listing's order moves between requests (neighbours swap places, as
                rows tied on a sort key may), its total and its tickets unchanged
- ``echo``:     400 whose body echoes the request's token at offset ``echo_at``
- ``redirect``: 302 to another host with an empty body, for every GET and POST (a captive
                portal, an API moved)
- ``gzip``:     the listing gzip-compressed, as most servers send it when asked
- ``bomb``:     ``huge_bytes`` of spaces gzip-compressed ``layers`` times, sent with
                ``content-encoding: gzip`` that many times (a few hundred KiB at most)
- ``corrupt``:  ``content-encoding: gzip`` on bytes that are not gzip, with ``status``

and in every mode ``GET /tickets/{barcode}`` (the online lookup) answers ``docs[0]``,
whatever barcode was asked for: a lookup that answers with another ticket.

``scans_answer`` is the (status, body) every ``POST /scans`` gets. Tests change ``docs``,
``mode`` and ``scans_answer`` between requests; ``requests`` logs the paths served.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import random
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

PREFIX = "/api/accessusers"
EVENT = "ev-hostile"
TOKEN = "Zq7Rk-secret-9f3k2m8x4w1v6b0n5j"


def hostile_doc(index: int, updated: str = "2030-01-01T00:00:00.000Z",
                **fields: Any) -> dict[str, Any]:
    """A well-formed ticket document; ``fields`` override or break any of it."""
    doc = {"_id": f"h{index:06d}", "barcode": f"HB{index:08d}", "eventId": EVENT,
           "status": "VALID", "ticketTypeId": "tt", "ticketName": "GA", "sellerId": "s",
           "createdAt": updated, "updatedAt": updated}
    doc.update(fields)
    return doc


class HostileServer:
    def __init__(self) -> None:
        self.mode = "ok"
        self.docs: list[dict[str, Any]] = []
        self.drip_every = 0.5
        self.stall_all = False
        self.cut_at = 0
        self.stall_for = 3600.0
        self.date: str | None = None  # the Date header every answer carries; None: now
        self.huge_bytes = 200 * 1024 * 1024
        self.grow_by = 1000
        self.echo_at = 490
        self.layers = 1
        self.status = 200
        # How POST /scans is answered (in every mode but ``redirect``).
        self.scans_answer = (200, b'{"status":"OK"}')
        self.requests: list[str] = []
        self._grown = 0
        self._rng = random.Random(3)
        self._stop = threading.Event()
        self._httpd = _Quiet(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="hostile-server")

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def stopped(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True once the server is stopping."""
        return self._stop.wait(seconds)

    def listing(self, query: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
        start, until = query.get("from"), query.get("until")
        docs = sorted((d for d in self.docs
                       if (start is None or str(d.get("updatedAt")) >= start)
                       and (until is None or str(d.get("updatedAt")) < until)),
                      key=lambda d: (str(d.get("updatedAt")), str(d.get("_id"))))
        if self.mode == "growing":
            self._grown += self.grow_by
            docs += [hostile_doc(len(self.docs) + i) for i in range(self._grown)]
        if self.mode == "unstable":
            for i in range(len(docs) - 1):
                if self._rng.random() < 0.3:
                    docs[i], docs[i + 1] = docs[i + 1], docs[i]
        skip, top = int(query.get("skip", 0)), int(query.get("top", 25))
        if self.mode == "wrap" and docs:
            return [docs[(skip + i) % len(docs)] for i in range(top)], len(docs)
        if self.mode == "cut":
            return docs[skip:min(skip + top, self.cut_at)], len(docs)
        if self.mode == "repeat":
            skip = 0
        return docs[skip:skip + top], len(docs)


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a lie and hung up: what the tests want


def _handler(server: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:  # quiet: tests read their own logs
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            return server.date or super().date_time_string(timestamp)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            server.requests.append(parts.path)
            path = parts.path.removeprefix(PREFIX)
            if server.mode == "redirect":
                return self._redirect()
            if server.mode in ("drip", "hang") and server.stall_all:
                return self._stall(server.mode)
            if server.mode == "echo":
                token = self.headers.get("token", "")
                body = b"x" * server.echo_at + f"bad token {token}".encode() + b"y" * 600
                return self._send(400, body)
            if path == "/me":
                return self._send(200, orjson.dumps({"deviceSettings": {}}))
            if path == "/events":
                return self._send(200, orjson.dumps([{"_id": EVENT, "name": "Hostile"}]))
            if path.startswith("/tickets/") and not path.startswith("/tickets/v2/"):
                return self._send(200, orjson.dumps(server.docs[0]))
            if not path.startswith("/tickets/v2/"):
                return self._send(404, b"{}")
            if server.mode in ("drip", "hang"):
                return self._stall(server.mode)
            if server.mode == "huge":
                return self._stream(_huge_page(server.huge_bytes))
            if server.mode == "bomb":
                return self._send(200, _bomb(server.huge_bytes, server.layers),
                                  encoding=", ".join(["gzip"] * server.layers))
            if server.mode == "corrupt":
                return self._send(server.status, b"\x1f\x8b\x08\x00 not gzip" * 10,
                                  encoding="gzip")
            docs, total = server.listing(query)
            body = orjson.dumps({"docs": docs, "total": total})
            if server.mode == "gzip":
                return self._send(200, gzip.compress(body), encoding="gzip")
            return self._send(200, body)

        def do_POST(self) -> None:
            server.requests.append(urlsplit(self.path).path)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if server.mode == "redirect":
                return self._redirect()
            if server.mode in ("drip", "hang") and server.stall_all:
                return self._stall(server.mode)
            return self._send(*server.scans_answer)

        def _redirect(self) -> None:
            self.send_response(302)
            self.send_header("location", "http://portal.example/login")
            self.send_header("content-length", "0")
            self.end_headers()

        def _send(self, status: int, body: bytes, encoding: str | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if encoding is not None:
                self.send_header("content-encoding", encoding)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # a client that had enough hung up
                self.wfile.write(body)

        def _stall(self, mode: str) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "1000000")
            self.end_headers()
            self.wfile.flush()
            # Then the connection is cut: a client that waits for ever fails its test late
            # instead of hanging it.
            ends = time.monotonic() + server.stall_for
            self.close_connection = True
            while not server.stopped(server.drip_every if mode == "drip" else 3600) \
                    and time.monotonic() < ends:
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:  # the client gave up: what the test wants
                    return

        def _stream(self, chunks: Iterator[bytes]) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                return

    return Handler


def _huge_page(size: int) -> Iterator[bytes]:
    """A syntactically valid page of about ``size`` bytes, one chunk at a time."""
    doc = orjson.dumps(hostile_doc(0, name="x" * 900))
    yield b'{"total": 1, "docs": ['
    sent = 0
    chunk = b",".join([doc] * 64)
    while sent < size:
        yield (b"," if sent else b"") + chunk
        sent += len(chunk)
    yield b"]}"




@functools.cache
def _bomb(size: int, layers: int) -> bytes:
    """``size`` spaces gzip-compressed ``layers`` times, never all held at once."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b" " * (1 << 20)
    body = b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body
