"""Serial handheld reader over a real pty pair: what a USB CDC scanner looks like to Linux."""

from __future__ import annotations

import contextlib
import os
import queue
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.waiting import WAIT, Collect, in_thread, wait_for

from hardware.reads import RawRead
from hardware.serial_reader import LineSplitter, SerialReader, parse_terminator
from scanner.read.hygiene import Hygiene, Rejected
from scanner.read.pipeline import Pipeline


class Pty:
    """A pty pair behind a symlink, like /dev/serial/by-id/... pointing at /dev/ttyACMn."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no CR->NL translation before the reader sets raw mode
        tmp = link.with_suffix(".new")
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, link)

    def write(self, *chunks: bytes, pause: float = 0.02) -> None:
        for chunk in chunks:
            os.write(self.master, chunk)
            time.sleep(pause)  # separate writes arrive as separate reads

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):  # already closed to simulate an unplug
                os.close(fd)


class Running:
    def __init__(self, reader: SerialReader) -> None:
        self.reader = reader
        self.reads: queue.Queue[RawRead] = queue.Queue()
        self.thread = in_thread(lambda: [self.reads.put(read) for read in reader])
        self.wait_opens(1)

    def wait_opens(self, count: int) -> None:
        wait_for(lambda: self.reader.link.opens >= count, f"open number {count}")

    def next(self) -> RawRead:
        return self.reads.get(timeout=WAIT)

    def stop(self) -> None:
        self.reader.stop()
        self.thread.join(WAIT)


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    pair = Pty(tmp_path / "scanner")
    yield pair
    pair.close()


@pytest.fixture
def status() -> list[str]:
    return []


def start(pty: Pty, status: list[str], **options: object) -> Running:
    reader = SerialReader(str(pty.link), on_status=status.append, backoff_first=0.02,
                          backoff_cap=0.1, **options)  # type: ignore[arg-type]
    return Running(reader)


@pytest.fixture
def running(pty: Pty, status: list[str]) -> Iterator[Running]:
    run = start(pty, status)
    yield run
    run.stop()


def test_one_line_is_one_read(pty: Pty, running: Running) -> None:
    pty.write(b"VT-000001\r\n")
    read = running.next()
    assert (read.data, read.source, read.truncated) == (b"VT-000001", f"serial:{pty.link}",
                                                        False)


def test_split_writes_join_into_one_read(pty: Pty, running: Running) -> None:
    pty.write(b"VT-0", b"000", b"02\r", b"\nVT-000003\r\n")
    assert [running.next().data, running.next().data] == [b"VT-000002", b"VT-000003"]


def test_garbage_bytes_are_handed_over_unchanged(pty: Pty, running: Running) -> None:
    pty.write(b"\xff\x00\x1b[A\r\n")
    assert running.next().data == b"\xff\x00\x1b[A"


def test_overlong_line_is_cut_once_and_the_next_line_read(pty: Pty, status: list[str]) -> None:
    run = start(pty, status, max_length=16)
    try:
        pty.write(b"A" * 40, b"B" * 40, b"\r\nVT-OK\r\n")
        first, second = run.next(), run.next()
    finally:
        run.stop()
    assert (first.data, first.truncated) == (b"A" * 16, True)
    assert (second.data, second.truncated) == (b"VT-OK", False)


def test_prefix_and_suffix_are_stripped(pty: Pty, status: list[str]) -> None:
    run = start(pty, status, prefix=b"\x02", suffix=b"\x03")
    try:
        pty.write(b"\x02VT-9\x03\r\n")
        assert run.next().data == b"VT-9"
    finally:
        run.stop()


@pytest.mark.parametrize(("terminator", "wire"), [
    ("CR", b"VT-1\rVT-2\r"), ("LF", b"VT-1\nVT-2\n"), ("CRLF", b"VT-1\r\nVT-2\r\n"),
    ("\x03", b"VT-1\x03VT-2\x03")])
def test_terminators(pty: Pty, status: list[str], terminator: str, wire: bytes) -> None:
    run = start(pty, status, terminator=terminator)
    try:
        pty.write(wire)
        assert [run.next().data, run.next().data] == [b"VT-1", b"VT-2"]
    finally:
        run.stop()


def test_stop_cancels_a_read_waiting_on_a_quiet_port(pty: Pty, status: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's turn with nobody scanning is long (each is a wake-up, all day); a stop
    does not wait for it: it cancels the read."""
    import hardware.serial_reader

    monkeypatch.setattr(hardware.serial_reader, "POLL_SECONDS", 10 * WAIT)
    run = start(pty, status)
    run.stop()
    assert not run.thread.is_alive()

def test_vanished_device_is_reported_and_reopened(tmp_path: Path, pty: Pty, running: Running,
                                                  status: list[str]) -> None:
    pty.write(b"VT-BEFORE\r\n")
    assert running.next().data == b"VT-BEFORE"
    pty.write(b"VT-HALF")  # cut off mid-line by the unplug: must not prefix the next read
    replacement = Pty(pty.link)  # re-enumerated: the by-id link points at a new tty
    try:
        pty.close()
        running.wait_opens(2)
        replacement.write(b"VT-AFTER\r\n")
        assert running.next().data == b"VT-AFTER"
    finally:
        replacement.close()
    assert any("vanished" in line for line in status)
    assert any("open again" in line for line in status)


def test_missing_port_is_retried_until_stopped_and_said_once(tmp_path: Path,
                                                             status: list[str]) -> None:
    reader = SerialReader(str(tmp_path / "absent"), on_status=status.append,
                          backoff_first=0.01, backoff_cap=0.02)
    run = Collect(reader, reader.stop)
    wait_for(lambda: reader.link.failed_opens >= 4, "four open attempts")
    assert run.stop()
    assert len(status) == 1 and "cannot open" in status[0]
    assert reader.link.connected is False


def test_a_source_without_a_status_sink_logs_each_line_itself_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = SerialReader(str(tmp_path / "absent"), backoff_first=0.01, backoff_cap=0.02)
    run = Collect(reader, reader.stop)
    time.sleep(0.2)
    assert run.stop()
    said = [r for r in caplog.records if "cannot open" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING"


def test_garbage_on_the_wire_is_one_rejected_line_and_the_gate_keeps_reading(
        pty: Pty, status: list[str]) -> None:
    reader = SerialReader(str(pty.link), on_status=status.append)
    decided: list[str] = []
    rejected: list[Rejected] = []
    pipeline = Pipeline([reader], Hygiene(), lambda p: p.text,
                        on_result=lambda p, r: decided.append(p.text),
                        on_reject=rejected.append)
    thread = in_thread(pipeline.run)
    try:
        wait_for(lambda: reader.link.opens, "the port to open")
        pty.write(b"\xc3\x28\x00\r\n", b"VT-GOOD\r\n")
        wait_for(lambda: decided, "a decision")
    finally:
        pipeline.stop()
        thread.join(WAIT)
    assert [r.reason for r in rejected] == ["NOT_UTF8"] and decided == ["VT-GOOD"]


def test_loop_url_reads_what_it_is_sent() -> None:
    import serial

    port = serial.serial_for_url("loop://", timeout=0.1)
    port.write(b"VT-LOOP\r\n")
    splitter = LineSplitter(b"\r\n")
    assert splitter.feed(port.read(64)) == [(b"VT-LOOP", False)]


def test_splitter_keeps_memory_bounded_without_terminator() -> None:
    splitter = LineSplitter(b"\r\n", max_length=8)
    out = [splitter.feed(b"X" * 1000) for _ in range(100)]
    assert out[0] == [(b"X" * 8, True)] and all(o == [] for o in out[1:])
    assert len(splitter._buffer) <= 1


def test_splitter_finds_a_terminator_split_across_chunks() -> None:
    splitter = LineSplitter(b"\r\n", max_length=4)
    assert splitter.feed(b"ABCD\r") == [] and splitter.feed(b"\n") == [(b"ABCD", False)]


@pytest.mark.parametrize(("name", "raw"), [("CR", b"\r"), ("lf", b"\n"), ("CRLF", b"\r\n"),
                                           ("\r\n", b"\r\n"), ("\x03", b"\x03")])
def test_parse_terminator(name: str, raw: bytes) -> None:
    assert parse_terminator(name) == raw


def test_empty_terminator_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_terminator("")
