"""Serial handheld scanners (USB CDC-ACM or RS-232) through pyserial's ``serial_for_url``.

``serial_for_url`` rather than ``Serial`` so the same code reads a real port, a pty in
tests, ``loop://`` or ``socket://host:port`` (a scanner behind a serial server).
A vanished device (USB re-enumeration, cable pulled) is reported and reopened with backoff;
point ``url`` at a /dev/serial/by-id/ link so the reopened device is the same scanner.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from hardware.reads import DEFAULT_MAX_LENGTH, RawRead, StatusFn, ignore_status, now_ns
from hardware.reconnect import BACKOFF_CAP, BACKOFF_FIRST, DeviceSource, Reconnect

log = logging.getLogger(__name__)

# Names an operator may write instead of escape sequences in TOML.
TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
# The loop's turn with nobody scanning (its heartbeat, well inside any watchdog's): reads
# return as soon as bytes arrive, and stop() cancels a read that waits, so this costs
# neither latency nor a slow stop; each turn is a wake-up, paid by every gate all day.
POLL_SECONDS = 0.5


def parse_terminator(value: str | bytes) -> bytes:
    """``"CR"``, ``"LF"``, ``"CRLF"`` or the literal bytes (``"\\r\\n"``, ``"\\x03"``)."""
    if isinstance(value, bytes):
        raw = value
    else:
        raw = TERMINATORS.get(value.upper()) or value.encode("latin-1")
    if not raw:
        raise ValueError("terminator must not be empty")
    return raw


class LineSplitter:
    """Cuts a byte stream into terminated lines, never holding more than ``max_length``.

    A line longer than the limit is handed over once, cut and marked truncated, and the
    rest of it is discarded up to the next terminator: a scanner stuck without terminator
    cannot grow the buffer, and the gate still hears that something was wrong.
    """

    def __init__(self, terminator: bytes, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.terminator = terminator
        self.max_length = max_length
        self._buffer = bytearray()
        self._discarding = False

    def reset(self) -> None:
        self._buffer.clear()
        self._discarding = False

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        """Add bytes; return the completed lines as ``(line, truncated)``."""
        self._buffer += chunk
        out: list[tuple[bytes, bool]] = []
        term = self.terminator
        while (end := self._buffer.find(term)) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[:end + len(term)]
            if self._discarding:
                self._discarding = False  # the overlong line was reported when it overflowed
            elif len(line) > self.max_length:
                out.append((line[:self.max_length], True))
            else:
                out.append((line, False))
        # Keep a possible first half of a split terminator, nothing more.
        keep = len(term) - 1
        if self._discarding:
            del self._buffer[:max(0, len(self._buffer) - keep)]
        elif len(self._buffer) > self.max_length + keep:
            out.append((bytes(self._buffer[:self.max_length]), True))
            self._discarding = True
            del self._buffer[:max(0, len(self._buffer) - keep)]
        return out


class SerialReader(DeviceSource):
    """Yields one ``RawRead`` per terminated line until stopped; survives the device leaving."""

    def __init__(self, url: str, *, baud: int = 9600, terminator: str | bytes = b"\r\n",
                 prefix: bytes = b"", suffix: bytes = b"",
                 max_length: int = DEFAULT_MAX_LENGTH, name: str | None = None,
                 on_status: StatusFn = ignore_status, backoff_first: float = BACKOFF_FIRST,
                 backoff_cap: float = BACKOFF_CAP) -> None:
        self.url = url
        self.baud = baud
        self.prefix = prefix
        self.suffix = suffix
        self.name = name or f"serial:{url}"
        self.splitter = LineSplitter(parse_terminator(terminator), max_length)
        self.link = Reconnect(self.name, on_status, backoff_first, backoff_cap, log)
        self._port: Any = None  # the open port, for stop() to cancel its read


    def __iter__(self) -> Iterator[RawRead]:
        # SerialException is an OSError; pyserial raises ValueError on a closed port.
        return self.link.sessions(self._open, self._lines, self._close,
                                  errors=(OSError, ValueError))

    def stop(self) -> None:
        super().stop()
        port = self._port
        cancel = getattr(port, "cancel_read", None)  # pyserial's, where the port has one
        if cancel is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):  # closing now
                cancel()

    def probe(self) -> None:
        """Open the port once and release it, as the first open of a reader would."""
        self._close(self._open())

    def _close(self, port: Any) -> None:
        self._port = None
        port.close()
        self.splitter.reset()  # half a line from a device that left is not a code

    def _open(self) -> Any:
        import serial

        self._port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=POLL_SECONDS)
        return self._port

    def _lines(self, port: Any) -> Iterator[RawRead]:
        while not self.link.stopped.is_set():
            # Ask for what is waiting (at least one byte) so a line is handed over as soon
            # as its terminator arrives, not when the timeout expires.
            chunk = port.read(max(1, port.in_waiting))
            self.link.alive()
            if not chunk:
                continue
            arrived = now_ns()
            for line, truncated in self.splitter.feed(chunk):
                yield RawRead(self._strip(line), self.name, arrived, truncated=truncated)

    def _strip(self, line: bytes) -> bytes:
        if self.prefix and line.startswith(self.prefix):
            line = line[len(self.prefix):]
        if self.suffix and line.endswith(self.suffix):
            line = line[:-len(self.suffix)]
        return line
