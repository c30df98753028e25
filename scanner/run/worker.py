"""The one shape of every long-running loop: a named worker in its own thread.

A worker has a ``start()``, an idempotent ``stop()`` and a ``heartbeat`` (monotonic time of
its last beat) that must not get older than its declared ``heartbeat_timeout``. Subclasses
write ``run()``: loop until ``stopping`` is set, call ``beat()`` each round, and return. A
``run()`` that raises or returns unasked has died; one that stops beating has hung. The
supervisor (``scanner.run.supervisor``) tells the two apart and restarts the worker.

A background worker's thread (the mesh, sync and upload jobs, the state file) runs at a
lower CPU priority (``BACKGROUND_NICE``), and so do the threads it starts (paho's network
loop, the job pool): on a busy machine the read, the decision, the journal and the relay
come first, and hearing a venue's every scan waits for a free core instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path

from scanner.errors import GateError


class WorkerExited(GateError, RuntimeError):
    """A worker's ``run()`` returned although nobody asked it to stop."""


class Stage(IntEnum):
    """Where a worker sits in the flow; SIGTERM stops the stages in this order."""

    READER = 0      # no new reads first,
    LANE = 1        # then the decision in flight is finished and journaled,
    BACKGROUND = 2  # sync and upload jobs,
    OUTPUT = 3      # and the relay last, so a grant in flight still opens the gate


# How much nicer (Linux's nice, up to 19) a background worker's thread runs than the
# process: the scheduler gives a runnable thread ten steps less nice about nine times its
# share. Not more: a background thread holding the interpreter's lock must still get a
# core back soon, or the lane of its own gate waits for it.
BACKGROUND_NICE = 10


def lower_priority(by: int = BACKGROUND_NICE) -> None:
    """Run the calling thread (and the threads it starts) ``by`` steps nicer. Linux only,
    where a thread id names one thread (elsewhere it would name a process); best effort."""
    if sys.platform == "linux":
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid,
                           min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))


def name_thread(name: str) -> None:
    """Show the calling thread as ``name`` to the kernel too (its first 15 bytes), so
    ``top -H`` and ``ps -L`` on a gate say which worker spends the CPU; threads it starts
    (paho's, the job pool) inherit it. Linux only, best effort."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_bytes(
                name.encode("ascii", "replace")[:15])


class Worker(ABC):
    # A background worker yields the cores to its process's other stages; one that is its
    # process's whole work (the control room's observer) has no one to yield to.
    yields_cpu = True

    def __init__(self, name: str, *, heartbeat_timeout: float, stage: Stage = Stage.BACKGROUND,
                 essential: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.heartbeat_timeout = heartbeat_timeout
        self.stage = stage
        self.essential = essential  # a process that cannot keep it alive must exit
        self.clock = clock
        self.heartbeat = clock()
        self.failure: BaseException | None = None
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @abstractmethod
    def run(self) -> None:
        """The loop. Runs in the worker's thread; may run again after it raised or returned."""

    def interrupt(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Unblock a ``run()`` stuck in I/O (close a port, wake a queue); called by ``stop()``."""

    def beat(self) -> None:
        self.heartbeat = self.clock()

    def problem(self) -> str | None:
        """What is wrong with what it drives while its loop runs fine (a device gone), for
        /healthz and systemd's STATUS; None when nothing is."""
        return None

    def stale(self, now: float) -> bool:
        return now - self.heartbeat > self.heartbeat_timeout

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self.running:
                raise RuntimeError(f"worker {self.name} is already running")
            self.stopping.clear()
            self.failure = None
            self.beat()  # a fresh start gets a full heartbeat_timeout to beat
            self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the worker to end; calling it again, or before ``start()``, does nothing more."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        self.interrupt()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it has (or never started)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def _main(self) -> None:
        name_thread(self.name)
        if self.stage is Stage.BACKGROUND and self.yields_cpu:
            lower_priority()
        try:
            self.run()
        except Exception as exc:  # the supervisor reports it and restarts the worker
            self.failure = exc
            return
        if not self.stopping.is_set():
            self.failure = WorkerExited(f"worker {self.name} returned without being stopped")


class SessionWorker(Worker):
    """A worker whose every ``run()`` is one session: ``open()``, then ``step()`` each beat
    until asked to stop, then ``shut()``; a restart after a crash opens a fresh one (the
    mesh link and the venue worker: one broker connection per run)."""

    def run(self) -> None:
        self.open()
        try:
            while not self.stopping.is_set():
                self.beat()
                self.step()
        finally:
            self.shut()

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def step(self) -> None: ...

    @abstractmethod
    def shut(self) -> None: ...

    def close(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread (the composition root's closer, the tests')."""
        self.stop()
        self.join(timeout)
