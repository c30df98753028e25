"""The signals that stop a process (systemd's SIGTERM, a terminal's ^C), as an event.

A Python signal handler runs on the main thread between two of its bytecodes, and so may
run while that thread is inside ``Event.wait`` holding the event's own lock (taken around
the wait and again after it). A handler that sets that event there waits for a lock its
thread holds: the process deadlocks in the handler and ignores every later SIGTERM, while
its other threads go on until systemd kills it. So the handler only writes a byte to a
pipe, which takes no lock, and a thread of its own reads it and sets the event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOPPING = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(*signals: int,
                    on_stop: Callable[[], object] | None = None) -> Iterator[threading.Event]:
    """An event set when one of ``signals`` (default SIGTERM and SIGINT) arrives, for loops
    that end cleanly on systemd's stop or Ctrl-C; ``on_stop`` is called at each one too,
    on the same thread that sets the event. The previous handlers are back in place on
    exit. Call it on the main thread (Python runs handlers there only)."""
    stop = threading.Event()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def relay() -> None:
        try:
            while os.read(read_end, 64):  # empty: the write end closed, the block ended
                stop.set()
                if on_stop is not None:
                    on_stop()
        finally:
            os.close(read_end)

    def handler(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: a wake-up is waiting
            os.write(write_end, b"\0")

    thread = threading.Thread(target=relay, name="stop-signals", daemon=True)
    thread.start()
    previous: dict[int, Any] = {}
    try:
        for sig in signals or STOPPING:
            previous[sig] = signal.signal(sig, handler)
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(write_end)  # after the handlers: none writes to a closed, reused number
        thread.join(5)  # on_stop calls are quick; a stuck one keeps no command from ending
