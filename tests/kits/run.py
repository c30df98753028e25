"""Helpers shared by the daemon tests (no tests here): a real systemd-style notify socket and
workers that can be made to crash or hang on demand."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

from scanner.run.notify import Notifier
from scanner.run.worker import Stage, Worker


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; ``messages`` are what arrived."""

    def __init__(self, path: Path | None = None, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.name = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(str(path))
            self.name = str(path)
        self.sock.settimeout(0.0)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        """Every datagram received since the last drain, oldest first."""
        new = []
        while True:
            try:
                new.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break
        self.messages += new
        return new

    def notifier(self, watchdog: float | None = None) -> Notifier:
        env = {"NOTIFY_SOCKET": self.name}
        if watchdog is not None:
            env["WATCHDOG_USEC"] = str(int(watchdog * 1_000_000))
        return Notifier.from_env(env)

    def close(self) -> None:
        self.sock.close()


class Loop(Worker):
    """Beats every 10 ms until stopped. ``crash`` makes the next round raise; ``hang`` makes
    it block until ``release`` (which ``stop()`` does not set: a thread stuck in a driver)."""

    def __init__(self, name: str, *, stage: Stage = Stage.BACKGROUND, essential: bool = False,
                 heartbeat_timeout: float = 0.3, on_round: Callable[[Loop], None] | None = None,
                 release_on_stop: bool = False) -> None:
        super().__init__(name, heartbeat_timeout=heartbeat_timeout, stage=stage,
                         essential=essential)
        self.crash = threading.Event()
        self.crash_always = False
        self.hang = threading.Event()
        self.release = threading.Event()
        self.release_on_stop = release_on_stop
        self.starts = 0
        self.rounds = 0
        self.on_round = on_round

    def run(self) -> None:
        self.starts += 1
        while not self.stopping.wait(0.01):
            if self.crash_always or self.crash.is_set():
                self.crash.clear()
                raise OSError(f"{self.name} lost its device")
            if self.hang.is_set():
                self.release.wait()
                self.hang.clear()
                return
            self.rounds += 1
            if self.on_round is not None:
                self.on_round(self)
            self.beat()

    def interrupt(self) -> None:
        if self.release_on_stop:
            self.release.set()
