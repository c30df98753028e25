"""Reconnecting device sources: opening with backoff until the device is there, a stop that
interrupts a sleeping retry, and one status line per change. Every device adapter of this
package builds on ``Reconnect``; ``DeviceSource`` is what each shows of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from hardware.reads import StatusFn, ignore_status, now_ns

T = TypeVar("T")
R = TypeVar("R")

# Reconnect delays, in seconds: the first retry, and the most a retry ever waits.
BACKOFF_FIRST = 0.2
BACKOFF_CAP = 5.0


class Backoff:
    """Reconnect delays: doubling from ``first`` to ``cap``, reset after a success.

    Waiting happens on an Event so ``stop()`` interrupts a sleeping reconnect at once.
    """

    def __init__(self, stopped: threading.Event, first: float = BACKOFF_FIRST,
                 cap: float = BACKOFF_CAP) -> None:
        self._stopped = stopped
        self.first = first
        self.cap = cap
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    def wait(self) -> bool:
        """Sleep the current delay; False when stopped meanwhile."""
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return not self._stopped.wait(delay)


class Reconnect:
    """What every device source shares: a stop flag, opening with backoff, status lines.

    ``open(fn)`` retries ``fn`` until it succeeds or the source is stopped; ``OSError``
    (pyserial's SerialException and evdev's errors are OSErrors) and ``ValueError`` count
    as "device not there yet".
    """

    def __init__(self, name: str, on_status: StatusFn, first: float = BACKOFF_FIRST,
                 cap: float = BACKOFF_CAP, logger: logging.Logger | None = None) -> None:
        self.name = name
        self.on_status = on_status
        self.stopped = threading.Event()
        self.backoff = Backoff(self.stopped, first, cap)
        self.opens = 0  # successful opens; more than one means the device came back
        self.failed_opens = 0
        # Monotonic ns of the source loop's last turn: a reader's heartbeat. Loops move it on
        # every read timeout too, so it stays fresh with nobody scanning, and stops moving
        # only when the loop is stuck (a driver that never returns).
        self.alive_ns = now_ns()
        # True while a device is open, False after it failed to open or vanished, None
        # before the first attempt: the kiosk's "reader disconnected" banner.
        self.connected: bool | None = None
        self._log = logger or logging.getLogger(__name__)
        self._last_cause: str | None = None  # the failure last said, until an open succeeds

    def stop(self) -> None:
        self.stopped.set()

    def alive(self) -> None:
        self.alive_ns = now_ns()

    def open(self, fn: Callable[[], T]) -> T | None:
        failed = False
        while not self.stopped.is_set():
            self.alive()  # retrying with backoff (at most BACKOFF_CAP) is not hanging
            try:
                handle = fn()
            except (OSError, ValueError) as exc:
                self.connected = False
                self.failed_opens += 1
                # A device that stays away is said once per cause, not at every retry: the
                # banner, /healthz and `gate status` keep saying it while it lasts.
                cause = str(exc)
                if cause != self._last_cause:
                    self.status(f"{self.name} cannot open ({exc}); "
                                f"retrying every {self.backoff.cap:.0f} s at most")
                    self._last_cause = cause
                failed = True
                if not self.backoff.wait():
                    return None
                continue
            self.alive()
            self.connected = True
            self._last_cause = None
            if self.opens or failed:
                self.status(f"{self.name} open again")
            self.opens += 1
            self.backoff.reset()
            return handle
        return None

    def sessions(self, open_fn: Callable[[], T], lines: Callable[[T], Iterator[R]],
                 close: Callable[[T], None],
                 errors: tuple[type[BaseException], ...] = (OSError,)) -> Iterator[R]:
        """Open with backoff, yield ``lines`` of the device until it vanishes (one of
        ``errors``), say so, close it, and reopen; until stopped."""
        while (handle := self.open(open_fn)) is not None:
            try:
                yield from lines(handle)
            except errors as exc:
                self.connected = False
                self.status(f"{self.name} vanished ({exc}); reopening")
            finally:
                close(handle)

    def status(self, message: str) -> None:
        if self.on_status is ignore_status:
            self._log.warning("%s", message)
        else:
            self.on_status(message)


class DeviceSource:
    """What every reconnecting device source shows of its ``link``: a stop, the device
    loop's last sign of life and whether the device is open."""

    link: Reconnect

    def stop(self) -> None:
        self.link.stop()

    @property
    def alive_ns(self) -> int:
        """The device loop's last round (a read, a timeout or an open attempt), monotonic ns."""
        return self.link.alive_ns

    @property
    def connected(self) -> bool | None:
        return self.link.connected
