"""The daemon's sync in a child process of its own, behind the Syncer's ``run_once``: the
daemon's side, and the frames both sides speak (the child is ``scanner.app.sync_child``).

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
(the configuration, with its token, never touches a file or an argument list). The child
is started by the command its builder gives, so this module knows nothing of what runs
there.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import selectors
import struct
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from scanner.child import gate_env
from scanner.errors import SyncError

if TYPE_CHECKING:
    from scanner.config import GateConfig
    from scanner.sync.syncer import EventReport

log = logging.getLogger("scanner.sync")

_HEADER = struct.Struct(">I")
# How often a run waiting for its reply looks at the stop event.
_STOP_POLL = 0.2
# The least change of the child's measured clock offset worth telling the daemon: a Date
# header has whole seconds, so a smaller change is that rounding, not the clock moving.
OFFSET_STEP = 1.0
# How long close() waits for the child to finish the page it writes before killing it.
_EXIT_WAIT = 10.0


def _ignore(_offset: float) -> None:
    return None


class SyncProcessFailed(SyncError):
    """The child failed the run (its fault, in one line) or died."""


def write_frame(stream: IO[bytes], message: object) -> None:
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


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame, or None at EOF."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


class SyncProcess:
    """``run_once`` as ``Syncer``'s, run by a child process that opens the same store."""

    def __init__(self, config: GateConfig, command: Sequence[str], *,
                 on_offset: Callable[[float], object] = _ignore) -> None:
        self._config = config
        self._on_offset = on_offset
        self._command = list(command)  # the child: scanner.app.gate.SYNC_CHILD
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
                write_frame(child.stdin, ("run", accept_deletions))
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
        write_frame(child.stdin, (self._config, logging.getLogger().getEffectiveLevel()))
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
                        write_frame(child.stdin, ("stop",))
                        asked_stop = True
                    continue
                message = read_frame(child.stdout)
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
