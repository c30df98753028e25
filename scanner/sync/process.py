"""The daemon's sync in a child process of its own, behind the Syncer's ``run_once``.

A sync thread shares the interpreter lock with the decision lane: decoding a page of 1,000
tickets is one uninterruptible stretch of C, building its rows a long run of bytecode, and
a check waiting for the lock between its SQLite calls pays for both (``gate bench validate``
figure (c)). In a child process the sync parses and writes on its own core; the store is
SQLite in WAL, so the gate's readers never wait for that writer, and the journal is a file
the child never opens.

The child is started at the first run and kept: each run is a request on its stdin, the
reports come back on its stdout, so the idle daemon pays no interpreter start per sync.
Its log records come back the same way and are logged here, under their own logger names:
the daemon keeps one log, and whatever listens to ``scanner.sync`` hears a run end. So do
the server clock offsets its client measures from Date headers (``on_offset``): the daemon
stamps scans with server time, and between uploads the sync is what talks to the server.

A stop (SIGTERM of the daemon) asks the run to end after the page it writes, as in a
thread; the child reads EOF when the daemon goes, however it went, and exits. It runs
niced and as a batch task (``yield_cpu``): on a busy core the decisions come first. A
child that dies fails that run with one line, and the next run starts a new one: what it
committed stays.

Frames are a 4-byte big-endian length and a pickle, between two processes of this gate
(the configuration, with its token, never touches a file or an argument list).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import selectors
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from scanner.cli.child import gate_env
from scanner.errors import SyncError

if TYPE_CHECKING:
    from scanner.config import GateConfig
    from scanner.sync.syncer import EventReport

log = logging.getLogger("scanner.sync")

_HEADER = struct.Struct(">I")
# How often a run waiting for its reply looks at the stop event.
_STOP_POLL = 0.2
# The least change of the child's measured clock offset worth telling the daemon.
OFFSET_STEP = 0.25
# How long close() waits for the child to finish the page it writes before killing it.
_EXIT_WAIT = 10.0


def _ignore(_offset: float) -> None:
    return None


class SyncProcessFailed(SyncError):
    """The child failed the run (its fault, in one line) or died."""


def _write(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    frame = memoryview(_HEADER.pack(len(data)) + data)
    while frame:  # an unbuffered pipe may take part of it
        frame = frame[stream.write(frame) or 0:]
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read(stream: IO[bytes]) -> Any:
    """The next frame, or None at EOF."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


class SyncProcess:
    """``run_once`` as ``Syncer``'s, run by a child process that opens the same store."""

    def __init__(self, config: GateConfig, *, on_offset: Callable[[float], object] = _ignore,
                 command: list[str] | None = None) -> None:
        self._config = config
        self._on_offset = on_offset
        self._command = command or [sys.executable, "-m", "scanner.sync.process"]
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one run at a time, as one Syncer runs

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def run_once(self, stop: threading.Event | None = None, *,
                 accept_deletions: bool = False) -> list[EventReport]:
        with self._lock:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            try:
                _write(child.stdin, ("run", accept_deletions))
                reply = self._reply(child, stop)
            except OSError:  # its pipes broke: it is gone
                reply = None
            if reply is None:
                self._reap()
                raise SyncProcessFailed(
                    f"the sync process ended (exit code {child.poll()}); the next run"
                    " starts a new one")
        kind, value = reply
        if kind == "ok":
            reports: list[EventReport] = value
            return reports
        if kind == "stopped":
            from scanner.sync.syncer import Stopped

            raise Stopped(value)
        raise SyncProcessFailed(value)

    def close(self) -> None:
        with self._lock:
            self._reap()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        # Unbuffered: a frame read ahead into a buffer would hide from select().
        # Without GATE_*: the child takes only the configuration it is sent (and so never
        # an operator's GATE_API_TOKEN from the environment).
        child = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 bufsize=0, env=gate_env())
        assert child.stdin is not None
        _write(child.stdin, (self._config, logging.getLogger().getEffectiveLevel()))
        self._child = child
        return child

    def _reply(self, child: subprocess.Popen[bytes], stop: threading.Event | None) -> Any:
        """The run's outcome; its log records on the way are logged here. None at EOF."""
        assert child.stdin is not None and child.stdout is not None
        asked_stop = False
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            while True:
                if not selector.select(_STOP_POLL):
                    if stop is not None and stop.is_set() and not asked_stop:
                        _write(child.stdin, ("stop",))
                        asked_stop = True
                    continue
                message = _read(child.stdout)
                kind = None if message is None else message[0]
                if kind == "offset":
                    self._on_offset(message[1])
                elif kind == "log":
                    _kind, name, level, text = message
                    logging.getLogger(name).log(level, "%s", text)
                else:
                    return message

    def _reap(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None and child.stdout is not None
        with contextlib.suppress(OSError):
            child.stdin.close()  # EOF: it stops after its page and exits
        try:
            child.wait(_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            log.warning("sync process: did not exit within %.0f s; killed", _EXIT_WAIT)
            child.kill()
            child.wait()
        child.stdout.close()


class _Relay(logging.Handler):
    """The child's log records, as frames for the daemon to log."""

    def __init__(self, replies: IO[bytes]) -> None:
        super().__init__()
        self._replies = replies

    def emit(self, record: logging.LogRecord) -> None:
        # Under the handler's lock: the client's download thread logs too. A closed pipe:
        # the daemon is gone, and the run ends at its next page.
        with contextlib.suppress(OSError):
            _write(self._replies, ("log", record.name, record.levelno, record.getMessage()))

    def send(self, reply: tuple[str, Any]) -> None:
        """A run's outcome, never inside another thread's log frame."""
        self.acquire()
        try:
            _write(self._replies, reply)
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


def _serve(requests: IO[bytes], replies: IO[bytes], stop: threading.Event) -> int:
    """The child: the configuration, then runs until EOF."""
    from scanner.app import Gate
    from scanner.cli.logs import setup_logging
    from scanner.errors import GateError
    from scanner.sync.collector import settle_for_sync
    from scanner.sync.syncer import Stopped

    first = _read(requests)
    if first is None:
        return 0
    config, level = first
    setup_logging(level <= logging.DEBUG)  # the daemon's levels; its records go back
    relay = _Relay(replies)
    logging.getLogger().handlers = [relay]
    runs: queue.Queue[bool | None] = queue.Queue()

    def listen() -> None:
        # In order: a stop always refers to the run asked before it.
        while (message := _read(requests)) is not None:
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
    # systemd's SIGTERM reaches the whole service, and a terminal's ^C the whole group: the
    # child then ends its run after the page it writes, as the daemon asks it to.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    # The frames own the real stdout; a stray print in the child goes to stderr instead.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return _serve(sys.stdin.buffer, replies, stop)


if __name__ == "__main__":
    sys.exit(main())
