"""The sync process's child: a gate of its own that only syncs, run by ``SyncProcess``
(``scanner.sync.process``) as ``python -m scanner.app.sync_child``.

It reads the configuration from its stdin, then one request per run, and answers each with
the run's reports; its log records and the server clock offsets its client measures go
back the same way. It reads EOF when the daemon goes, however it went, and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from typing import IO, Any

from scanner.app.gate import Gate
from scanner.errors import GateError
from scanner.run.signals import stop_on_signals
from scanner.run.worker import name_thread
from scanner.sync.collector import settle_for_sync
from scanner.sync.process import OFFSET_STEP, read_frame, write_frame
from scanner.sync.syncer import Stopped


class _Relay(logging.Handler):
    """The child's log records, as frames for the daemon to log."""

    def __init__(self, replies: IO[bytes]) -> None:
        super().__init__()
        self._replies = replies

    def emit(self, record: logging.LogRecord) -> None:
        # Under the handler's lock: the client's download thread logs too. A closed pipe:
        # the daemon is gone, and the run ends at its next page.
        with contextlib.suppress(OSError):
            write_frame(self._replies, ("log", record.name, record.levelno, record.getMessage()))

    def send(self, reply: tuple[str, Any]) -> None:
        """A run's outcome, never inside another thread's log frame."""
        self.acquire()
        try:
            write_frame(self._replies, reply)
        finally:
            self.release()


class _OffsetRelay:
    """Passes the child's measured clock offsets on, not one frame per page: only a change
    of at least ``OFFSET_STEP`` (the Date header has one-second resolution)."""

    def __init__(self, relay: _Relay) -> None:
        self._relay = relay
        self._sent: float | None = None

    def __call__(self, offset: float) -> None:
        if self._sent is not None and abs(offset - self._sent) < OFFSET_STEP:
            return
        self._sent = offset
        with contextlib.suppress(OSError):  # the daemon is gone
            self._relay.send(("offset", offset))


def _log_to(relay: _Relay, level: int) -> None:
    """Records to ``relay``, none to the child's own stderr: at debug when the daemon logs
    at debug (``gate -v``), else at info, as ``gate`` sets up its own log."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.INFO)
    root.handlers = [relay]
    # httpx logs every request at INFO, as in the daemon: not one line per page.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _serve(requests: IO[bytes], replies: IO[bytes], stop: threading.Event) -> int:
    """The child: the configuration, then runs until EOF."""
    first = read_frame(requests)
    if first is None:
        return 0
    config, level = first
    relay = _Relay(replies)
    _log_to(relay, level)
    runs: queue.Queue[bool | None] = queue.Queue()

    def listen() -> None:
        # In order: a stop always refers to the run asked before it.
        while (message := read_frame(requests)) is not None:
            if message[0] == "run":
                stop.clear()
                runs.put(message[1])
            elif message[0] == "stop":
                stop.set()
        stop.set()  # the daemon is gone or closing: end the run in flight after its page
        runs.put(None)

    threading.Thread(target=listen, name="sync-requests", daemon=True).start()
    with Gate(config) as gate:
        gate.api.on_offset = _OffsetRelay(relay)
        try:
            gate.open(Gate.syncer)
        except GateError:
            pass  # a store that cannot be opened: each run's reply says why
        else:
            settle_for_sync()  # a process whose work is syncing, as gate sync's
        while (accept := runs.get()) is not None:
            try:
                reply: tuple[str, Any] = ("ok", gate.syncer.run_once(stop,
                                                                     accept_deletions=accept))
            except Stopped as exc:
                reply = ("stopped", str(exc))
            except GateError as exc:
                reply = ("error", str(exc))
            except Exception as exc:  # one line for the daemon's log, not a dead child
                reply = ("error", f"unexpected {type(exc).__name__}: {exc}")
            try:
                relay.send(reply)
            except OSError:
                return 0  # the daemon went away
    return 0


# The child's CPU niceness: on a busy core the decision lane's process runs first.
CHILD_NICENESS = 10


def yield_cpu() -> None:
    """Niced, and SCHED_BATCH: the scheduler takes the child for the CPU-bound worker it is,
    so waking from a page's download it never preempts a decision lane, it waits for a
    tick. A syscall filter may refuse either: the child then runs as it is."""
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def main() -> int:
    yield_cpu()
    name_thread("gate-sync")  # top and ps -L tell it from the gate it syncs for
    # The frames own the real stdout; a stray print in the child goes to stderr instead.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # systemd's SIGTERM reaches the whole service, and a terminal's ^C the whole group: the
    # child then ends its run after the page it writes, as the daemon asks it to.
    with stop_on_signals() as stop:
        return _serve(sys.stdin.buffer, replies, stop)


if __name__ == "__main__":
    sys.exit(main())
