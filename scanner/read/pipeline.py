"""The read pipeline: sources -> hygiene -> sink, for ``gate scan`` and the gate daemon.

``scanner.app.Gate.pipeline`` builds one from a reader's configuration.

Each source runs in its own thread (a blocking serial read or a camera decode must not hold
up another source); one consumer thread, the caller of ``run()``, applies hygiene and calls
the sink, so the sink (the gatekeeper, its SQLite store) sees one read at a time, in
arrival order. ``inline=True`` (one source whose iteration ends promptly after ``stop()``,
as the serial and HID loops do; not stdin, whose read cannot be interrupted) runs hygiene
and the sink on the caller's thread as it iterates the source: for the daemon's readers a
thread hand-off less, i.e. a wake-up and a wait for the GIL less on the way to the relay.
Nothing a device sends can stop it: bad reads become ``Rejected`` lines, a failing sink or
source is counted and reported, and the pipeline keeps going.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from hardware.reads import RawRead, ReadSource, StatusFn, ignore_status
from scanner.errors import GateError
from scanner.read.hygiene import Hygiene, Payload, Rejected

log = logging.getLogger(__name__)

R = TypeVar("R")  # what the sink returns for a read: a CheckResult for the gatekeeper
_T = TypeVar("_T")
# Reads waiting for the consumer; a full queue blocks the source thread, and a camera
# then drops stale frames instead of queueing them.
QUEUE_SIZE = 64
# How often the consumer wakes to notice stop() and deliver signals.
POLL_SECONDS = 0.2


@dataclass
class Stats:
    reads: int = 0
    accepted: int = 0
    decided: int = 0         # accepted reads the sink took without a fault
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    sink_errors: int = 0     # reads, accepted or rejected, whose sink or on_reject failed
    source_errors: int = 0


def _ignore(*_args: object) -> None:
    """Default callback: the caller did not ask to hear about this."""


class Pipeline(Generic[R]):
    """``run()`` blocks until every source has ended or ``stop()`` is called.

    Callbacks run on the consumer thread: ``on_result(payload, result)`` after the sink,
    ``on_reject(rejected)`` for a read hygiene refused (it may journal it: its faults are
    counted as ``sink_errors``, like the sink's), ``on_status(line)`` for device news;
    each is optional.
    """

    def __init__(self, sources: Sequence[ReadSource], hygiene: Hygiene,
                 sink: Callable[[Payload], R], *,
                 on_result: Callable[[Payload, R], object] | None = None,
                 on_reject: Callable[[Rejected], object] | None = None,
                 on_status: StatusFn | None = None, inline: bool = False) -> None:
        if inline and len(sources) != 1:
            raise ValueError("an inline pipeline reads exactly one source")
        self.sources = list(sources)
        self.inline = inline
        self.hygiene = hygiene
        self.sink = sink
        self.on_result = on_result or _ignore
        self.on_reject = on_reject or _ignore
        self.on_status = on_status or ignore_status
        self.stats = Stats()
        self._queue: queue.Queue[RawRead | ReadSource] = queue.Queue(QUEUE_SIZE)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    def stop(self) -> None:
        """Idempotent, from any thread (a signal handler: through ``stop_on_signals``)."""
        self._stopped.set()
        for source in self.sources:
            source.stop()

    def run(self) -> Stats:
        if self.inline:
            return self._run_inline(self.sources[0])
        self._threads = threads = [threading.Thread(target=self._produce, args=(source,),
                                                    name=f"read:{source.name}", daemon=True)
                                   for source in self.sources]
        for thread in threads:
            thread.start()
        running = len(threads)
        try:
            while running and not self._stopped.is_set():
                try:
                    item = self._queue.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if isinstance(item, RawRead):
                    self.handle(item)
                else:
                    running -= 1  # a source put itself: it has ended
        finally:
            self.stop()
        # Source threads are daemons: stdin's blocking readline cannot be interrupted.
        for thread in threads:
            thread.join(timeout=0.5)
        return self.stats

    @property
    def lingering(self) -> bool:
        """A source's thread is still running after ``run()`` returned: stuck in its driver
        (an inline source ran on the caller's thread, which is back)."""
        return any(thread.is_alive() for thread in self._threads)

    def _run_inline(self, source: ReadSource) -> Stats:
        reads: Iterator[RawRead] | None = None
        try:
            while not self._stopped.is_set():
                try:
                    reads = iter(source) if reads is None else reads
                    raw = next(reads)
                except StopIteration:
                    break
                except Exception as exc:
                    self._source_failed(source, exc)
                    break
                self.handle(raw)
        finally:
            self.stop()
            close = getattr(reads, "close", None)
            if close is not None:
                close()  # a generator source closes its device now, not when collected
        return self.stats

    def handle(self, raw: RawRead) -> None:
        """One read through hygiene and the sink; public so a caller can drive it directly."""
        self.stats.reads += 1
        checked = self.hygiene.check(raw)
        if checked is None:
            self.stats.duplicates += 1
        elif isinstance(checked, Rejected):
            self.stats.rejected[checked.reason] = self.stats.rejected.get(checked.reason, 0) + 1
            self._guarded(checked.raw.source, self.on_reject, checked)
        else:
            self.stats.accepted += 1
            done, result = self._guarded(checked.source, self.sink, checked)
            if done:
                self.stats.decided += 1
                self.on_result(checked, cast(R, result))

    def _guarded(self, source: str, call: Callable[[_T], object],
                 item: _T) -> tuple[bool, object]:
        """``call(item)``; a fault in the decision path (``on_reject`` may journal too) is
        counted and said, and the gate goes on reading: the next person should not be
        stuck behind this one. A known fault (an unwritable journal) is one line; anything
        else is logged with its traceback."""
        try:
            return True, call(item)
        except GateError as exc:
            self.stats.sink_errors += 1
            log.error("cannot decide a read from %s: %s", source, exc)
            self.on_status(f"error deciding a read from {source}: {exc}")
        except Exception:
            self.stats.sink_errors += 1
            log.exception("sink failed on a read from %s", source)
            self.on_status(f"error deciding a read from {source}; see log")
        return False, None

    def _source_failed(self, source: ReadSource, exc: Exception) -> None:
        self.stats.source_errors += 1
        log.exception("source %s failed", source.name)
        self.on_status(f"{source.name} failed: {exc!r}")

    def _produce(self, source: ReadSource) -> None:
        try:
            for raw in source:
                while not self._stopped.is_set():
                    try:
                        self._queue.put(raw, timeout=POLL_SECONDS)
                        break
                    except queue.Full:
                        continue
                if self._stopped.is_set():
                    break
        except Exception as exc:
            self._source_failed(source, exc)
        finally:
            while True:  # tell the consumer this source ended, unless it has stopped
                try:
                    self._queue.put(source, timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    if self._stopped.is_set():
                        break


def latency_ms(payload: Payload, decided_ns: int | None = None) -> float:
    """Capture (frame grab or line arrival) to now, or to ``decided_ns``."""
    end = time.monotonic_ns() if decided_ns is None else decided_ns
    return (end - payload.captured_ns) / 1e6
