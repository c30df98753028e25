"""A reader worker: one ``[[readers]]`` entry's pipeline (its source, its own hygiene and
direction) feeding its lane's queue.

The heartbeat is the source's: a device source shows it is alive (``alive_ns``, moved on
every read timeout of its internal loop, so also while nobody scans), and a source whose
loop stopped moving (a driver stuck in a read) goes stale, stops the watchdog, and systemd
restarts the gate. Standard input cannot wake up without a line, so it is exempt.

A source that reaches the end of its input (stdin closed, a video file played out) has
ended, not died: the worker says so once and idles until stopped, instead of replaying the
file or reading a closed stdin again. A device source never ends by itself; when its
iteration ends anyway it is restarted with the supervisor's backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from scanner.decide.model import Direction
from scanner.printable import escape
from scanner.run.lane import Lane, LaneRead
from scanner.run.worker import Stage, Worker

if TYPE_CHECKING:
    from hardware.reads import StatusFn
    from scanner.config import ReaderConfig
    from scanner.read.hygiene import Payload, Rejected
    from scanner.read.pipeline import Pipeline

log = logging.getLogger("scanner.reader")

STUCK_POLL = 0.1

# Builds the pipeline for one reader: (reader config, sink, on_reject, on_status).
PipelineFactory = Callable[["ReaderConfig", Callable[["Payload"], bool],
                            Callable[["Rejected"], object], "StatusFn"], "Pipeline[bool]"]


def reader_name(config: ReaderConfig, index: int) -> str:
    """``config.name``, or the source and position (``serial-1``)."""
    return config.name or f"{config.source}-{index}"


def finite(config: ReaderConfig) -> bool:
    """Whether the source ends by itself at the end of its input."""
    if config.source == "stdin":
        return True
    if config.source == "camera":
        from hardware.camera import classify

        return classify(config.camera) in ("video", "image")
    return False


def stops_promptly(config: ReaderConfig) -> bool:
    """Whether the source's own loop ends soon after ``stop()`` (serial and HID poll their
    device with a short timeout), so its pipeline may decide on the source's thread."""
    return config.source in ("serial", "hid")


class ReaderWorker(Worker):
    def __init__(self, name: str, config: ReaderConfig, lane: Lane,
                 pipeline: PipelineFactory, *, heartbeat_timeout: float) -> None:
        super().__init__(f"reader:{name}", heartbeat_timeout=heartbeat_timeout,
                         stage=Stage.READER)
        self.reader = name
        self.config = config
        self.lane = lane
        self.direction = Direction(config.direction)
        self._make_pipeline = pipeline
        self._pipeline: Pipeline[bool] | None = None
        self._pipeline_lock = threading.Lock()
        self.ended = False  # the input is exhausted

    def run(self) -> None:
        if self.ended:
            self.stopping.wait()
            return
        pipeline = self._make_pipeline(self.config, self._accept, self._refuse, self._status)
        with self._pipeline_lock:
            self._pipeline = pipeline
        if self.stopping.is_set():  # stopped while the device was being set up
            pipeline.stop()
        try:
            pipeline.run()
            # A source thread stuck in its driver outlives the pipeline. While it does, this
            # worker does not end either: restarted, it would open the device a second time
            # beside the stuck one. So it stays hung, and systemd restarts the process.
            while self._stuck(pipeline):
                time.sleep(STUCK_POLL)
        finally:
            with self._pipeline_lock:
                self._pipeline = None
        if self.stopping.is_set():
            return
        if finite(self.config):
            self.ended = True
            log.info("reader %s: end of input; it reads nothing more until restarted",
                     self.reader)
            self.stopping.wait()
        # else: returning unasked, the supervisor restarts it

    def interrupt(self) -> None:
        with self._pipeline_lock:
            pipeline = self._pipeline
        if pipeline is not None:
            pipeline.stop()

    def stale(self, now: float) -> bool:
        alive = self._source_alive()
        if alive is None or self.ended:
            self.heartbeat = now  # stdin, or nothing left to read: nothing can hang
        elif alive > self.heartbeat:
            self.heartbeat = alive
        return super().stale(now)

    def _stuck(self, pipeline: Pipeline[bool]) -> bool:
        """A source thread outlived the pipeline and gives no sign of life. Once it ends
        (the driver let go), the worker ends too and is restarted like any other."""
        if not pipeline.lingering:
            return False
        alive = _alive(pipeline)
        return alive is not None and self.clock() - alive > self.heartbeat_timeout

    def _source_alive(self) -> float | None:
        """Monotonic seconds of the source's last sign of life; None if it gives none.
        Before the pipeline exists (device being set up) the start counts."""
        with self._pipeline_lock:
            pipeline = self._pipeline
        return self.heartbeat if pipeline is None else _alive(pipeline)

    @property
    def connected(self) -> bool | None:
        """False while one of its devices failed to open or vanished; None when its sources
        cannot tell (stdin) or none is open yet."""
        sources = self._sources()
        states = [getattr(source, "connected", None) for source in sources]
        if not states or any(state is None for state in states):
            return None
        return all(states)

    def problem(self) -> str | None:
        """A reader whose device failed to open, or vanished, cannot read anyone's ticket:
        the gate is unhealthy until it is back (a reader that cannot tell, stdin, never is)."""
        return f"reader {self.reader} disconnected" if self.connected is False else None

    @property
    def frames_decoded(self) -> int | None:
        """Camera frames through the decoder so far (this pipeline); None for line devices."""
        counts = [n for source in self._sources()
                  if isinstance(n := getattr(source, "decoded", None), int)]
        return sum(counts) if counts else None

    def _sources(self) -> list[object]:
        with self._pipeline_lock:
            pipeline = self._pipeline
        return list(pipeline.sources) if pipeline is not None else []

    def _accept(self, payload: Payload) -> bool:
        return self.lane.offer(LaneRead(payload.text, self.direction, self.reader,
                                        captured_ns=payload.captured_ns))

    def _refuse(self, rejected: Rejected) -> bool:
        log.warning("reader %s: %s", self.reader, escape(rejected.line()))
        return self.lane.offer(LaneRead(rejected.text, self.direction, self.reader,
                                        refused=rejected.why,
                                        captured_ns=rejected.raw.captured_ns))

    def _status(self, line: str) -> None:
        # A device lost or back is worth a warning: `journalctl -p warning` must find it.
        log.warning("reader %s: %s", self.reader, escape(line))


def _alive(pipeline: Pipeline[bool]) -> float | None:
    """The oldest last sign of life of the pipeline's sources (monotonic seconds), or None
    if one of them gives none (stdin)."""
    times: list[int | None] = [getattr(source, "alive_ns", None) for source in pipeline.sources]
    known = [t for t in times if t is not None]
    if len(known) < len(times):
        return None
    return min(known) / 1e9
