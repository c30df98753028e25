"""sd_notify: readiness, watchdog pings, status and stopping, told to systemd.

Datagrams go to the AF_UNIX socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace). Without that variable, as outside systemd, every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(name: str) -> str | None:
    """The address to send to for a ``NOTIFY_SOCKET`` value, or None if it is not one."""
    if len(name) > 1 and name[0] == "@":
        return "\0" + name[1:]  # the abstract namespace: no file, a leading NUL byte
    if name.startswith("/"):
        return name
    return None


def watchdog_period(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings: half of ``WATCHDOG_USEC``, so one late ping is not fatal.

    None when no watchdog is armed, or when it is armed for another process (``WATCHDOG_PID``).
    """
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec:
        return None
    try:
        if owner and int(owner) != pid:
            return None
        period = int(usec) / 2_000_000
    except ValueError:
        log.warning("WATCHDOG_USEC=%r or WATCHDOG_PID=%r is not a number; no watchdog pings",
                    usec, owner)
        return None
    return period if period > 0 else None


class Notifier:
    """Talks to systemd's notify socket; a no-op when ``address`` is None."""

    def __init__(self, address: str | None = None, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog_period = watchdog if address is not None else None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 pid: int | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        address = socket_address(name) if name else None
        if name and address is None:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; not notifying", name)
        return cls(address, watchdog_period(env, os.getpid() if pid is None else pid))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True if it was sent."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            # systemd gone or restarting: the gate goes on deciding; say so once, not per ping
            if not self._warned:
                log.warning("sd_notify to %r failed: %s", self.address, exc)
                self._warned = True
            return False
        self._warned = False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send("STATUS=" + " ".join(text.split()))  # one line, whatever it holds

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
