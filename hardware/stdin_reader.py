"""Standard input as a source, for kiosks fed by another program and for testing: one code
per line. End of input ends the source."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from typing import BinaryIO

from hardware.reads import DEFAULT_MAX_LENGTH, RawRead, now_ns


class StdinReader:
    """Yields one ``RawRead`` per line of a binary stream (``sys.stdin.buffer`` by default).

    Bytes, not text, so invalid UTF-8 reaches the reader's hygiene and gets a reason instead
    of a UnicodeDecodeError here. Lines are read with a limit: an endless line is cut and
    marked truncated, the rest of it skipped.
    """

    def __init__(self, stream: BinaryIO | None = None, *, name: str = "stdin",
                 max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.stream = stream if stream is not None else _private_stdin()
        self.name = name
        self.max_length = max_length
        self._stopped = threading.Event()

    def stop(self) -> None:
        # A blocking readline cannot be interrupted; the next line or EOF ends the loop.
        self._stopped.set()

    def __iter__(self) -> Iterator[RawRead]:
        limit = self.max_length + 2  # room for CRLF
        while not self._stopped.is_set():
            line = self.stream.readline(limit)
            if not line:
                return
            arrived = now_ns()
            if line.endswith(b"\n") or len(line) < limit:
                yield RawRead(line.rstrip(b"\r\n"), self.name, arrived)
                continue
            while (rest := self.stream.readline(limit)) and not rest.endswith(b"\n"):
                pass  # discard the remainder of the overlong line
            yield RawRead(line[:self.max_length], self.name, arrived, truncated=True)


def _private_stdin() -> BinaryIO:
    """Standard input through a reader of its own, not ``sys.stdin.buffer``: its blocking
    readline holds the reader's lock, and at exit the interpreter closes ``sys.stdin`` and
    waits for that lock, which a read that never returns never gives back (a fatal error at
    shutdown: "could not acquire lock for <stdin>")."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a file
        return sys.stdin.buffer
    return io.BufferedReader(io.FileIO(fd, "rb", closefd=False))
