"""The read pipeline: sources -> hygiene -> sink, with fakes honouring the source contract."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kits.waiting import WAIT, in_thread, wait_for

from hardware.reads import RawRead
from scanner.config import ReaderConfig
from scanner.errors import ConfigError, StoreError
from scanner.read.hygiene import Hygiene, Payload, Rejected
from scanner.read.pipeline import Pipeline
from scanner.read.registry import open_source


class ListSource:
    """A fake ReadSource: yields the given data, then ends (or waits for stop if endless)."""

    def __init__(self, items: list[bytes | str], name: str = "fake",
                 endless: bool = False) -> None:
        self.items = items
        self.name = name
        self.endless = endless
        self.stopped = threading.Event()

    def __iter__(self) -> Iterator[RawRead]:
        for item in self.items:
            yield RawRead(item, self.name, time.monotonic_ns())
        while self.endless and not self.stopped.wait(0.01):
            pass

    def stop(self) -> None:
        self.stopped.set()


class Recorder:
    def __init__(self) -> None:
        self.results: list[tuple[str, object]] = []
        self.rejects: list[Rejected] = []
        self.status: list[str] = []

    def pipeline(self, sources: list[ListSource], sink: object = None, *,
                 inline: bool = False) -> Pipeline:
        return Pipeline(sources, Hygiene(window=2.0), sink or (lambda p: p.text.lower()),
                        on_result=lambda p, r: self.results.append((p.text, r)),
                        on_reject=self.rejects.append, on_status=self.status.append,
                        inline=inline)


def test_codes_reach_the_sink_in_order_and_results_come_back() -> None:
    rec = Recorder()
    rec.pipeline([ListSource(["VT-A", "VT-B", "VT-C"])]).run()
    assert rec.results == [("VT-A", "vt-a"), ("VT-B", "vt-b"), ("VT-C", "vt-c")]


def test_garbage_is_reported_and_the_next_code_still_decided() -> None:
    rec = Recorder()
    stats = rec.pipeline([ListSource([b"\xff\xfe", b"VT-\x00", b"VT-OK"])]).run()
    assert [r.reason for r in rec.rejects] == ["NOT_UTF8", "CONTROL_CHARS"]
    assert rec.results == [("VT-OK", "vt-ok")]
    assert stats.rejected == {"NOT_UTF8": 1, "CONTROL_CHARS": 1}


def test_duplicates_are_counted_not_decided() -> None:
    rec = Recorder()
    stats = rec.pipeline([ListSource(["VT-A", "VT-A", "VT-A"])]).run()
    assert (len(rec.results), stats.duplicates) == (1, 2)


def test_a_failing_sink_is_counted_and_the_pipeline_goes_on() -> None:
    rec = Recorder()

    def sink(payload: Payload) -> str:
        if payload.text == "VT-BAD":
            raise RuntimeError("store on fire")
        return "ok"

    stats = rec.pipeline([ListSource(["VT-BAD", "VT-GOOD"])], sink).run()
    assert rec.results == [("VT-GOOD", "ok")]
    assert stats.sink_errors == 1 and rec.status == ["error deciding a read from fake; see log"]


def test_a_failing_reject_journal_is_counted_in_one_line_and_the_pipeline_goes_on() -> None:
    rec = Recorder()
    pipeline = rec.pipeline([ListSource([b"\xff", "VT-GOOD"])])

    def journal_reject(rejected: Rejected) -> None:
        raise StoreError("cannot journal scan 1: attempt to write a readonly database")

    pipeline.on_reject = journal_reject
    stats = pipeline.run()
    assert (stats.sink_errors, stats.decided, rec.results) == (1, 1, [("VT-GOOD", "vt-good")])
    assert rec.status == ["error deciding a read from fake: cannot journal scan 1: "
                          "attempt to write a readonly database"]


def test_a_failing_source_is_reported_and_others_keep_running() -> None:
    class Broken(ListSource):
        def __iter__(self) -> Iterator[RawRead]:
            raise OSError("unplugged mid-read")

    rec = Recorder()
    stats = rec.pipeline([Broken([], name="broken"), ListSource(["VT-A"])]).run()
    assert rec.results == [("VT-A", "vt-a")]
    assert stats.source_errors == 1 and "broken" in rec.status[0]


def test_reads_from_two_sources_are_all_decided() -> None:
    rec = Recorder()
    rec.pipeline([ListSource(["VT-A1", "VT-A2"], "a"), ListSource(["VT-B1"], "b")]).run()
    assert sorted(text for text, _ in rec.results) == ["VT-A1", "VT-A2", "VT-B1"]


@pytest.mark.parametrize("inline", [False, True], ids=["threaded", "inline"])
def test_stop_ends_run_of_an_endless_source(inline: bool) -> None:
    rec = Recorder()
    pipeline = rec.pipeline([ListSource(["VT-A"], endless=True)], inline=inline)
    runner = in_thread(pipeline.run)
    wait_for(lambda: rec.results, "the first decision")
    pipeline.stop()
    runner.join(timeout=WAIT)
    assert not runner.is_alive() and rec.results == [("VT-A", "vt-a")]


def test_an_inline_pipeline_decides_on_the_thread_that_iterates_its_source() -> None:
    deciders: list[threading.Thread] = []

    def sink(payload: Payload) -> str:
        deciders.append(threading.current_thread())
        return payload.text

    pipeline = Pipeline([ListSource(["VT-A", b"\xff", "VT-B"])], Hygiene(), sink, inline=True)
    stats = pipeline.run()
    assert deciders == [threading.current_thread()] * 2
    assert (stats.decided, stats.rejected) == (2, {"NOT_UTF8": 1})


def test_an_inline_pipeline_reports_a_failing_source() -> None:
    class Broken(ListSource):
        def __iter__(self) -> Iterator[RawRead]:
            raise OSError("unplugged mid-read")

    rec = Recorder()
    stats = rec.pipeline([Broken([], name="broken")], inline=True).run()
    assert stats.source_errors == 1 and "broken" in rec.status[0]


def test_an_inline_pipeline_over_two_sources_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly one source"):
        Pipeline([ListSource([]), ListSource([])], Hygiene(), lambda p: p.text, inline=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_nothing_a_scanner_sends_crashes_the_pipeline(items: list[bytes]) -> None:
    rec = Recorder()
    pipeline = rec.pipeline([])
    for item in items:
        pipeline.handle(RawRead(item, "fuzz", time.monotonic_ns()))
    stats = pipeline.stats
    assert stats.reads == len(items)
    assert stats.accepted + sum(stats.rejected.values()) + stats.duplicates == len(items)
    assert len(rec.results) == stats.accepted and len(rec.rejects) == sum(stats.rejected.values())


def test_unknown_source_name_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"reader\.source"):
        open_source(ReaderConfig(source="telepathy"))


def test_hid_source_without_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"reader\.device"):
        open_source(ReaderConfig(source="hid", device=""))


def test_unknown_keyboard_layout_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"reader\.layout"):
        open_source(ReaderConfig(source="hid", device="/dev/input/event0", layout="dvorak"))
