"""A handheld scanner made of a pty: a serial reader opens the slave side as its port, and
what is written into the master side is what it scans (the demo and ``gate bench run``)."""

from __future__ import annotations

import os
import time
import tty


class PtyHandheld:
    """One pty pair; ``port`` goes into ``[[readers]] port``; ``close()`` is idempotent."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: bytes arrive as written
        self.port = os.ttyname(self.slave)
        self._open = True

    def scan(self, code: str | bytes, terminator: bytes = b"\r\n") -> int:
        """Write one read; returns time.monotonic_ns() just before the write."""
        data = code.encode() if isinstance(code, str) else code
        stamp = time.monotonic_ns()
        os.write(self.master, data + terminator)
        return stamp

    def close(self) -> None:
        if self._open:
            self._open = False
            os.close(self.master)
            os.close(self.slave)

    def __enter__(self) -> PtyHandheld:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
