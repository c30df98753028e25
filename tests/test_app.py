"""The composition root: what ``Gate`` builds, once, from any thread, and releases in order."""

from __future__ import annotations

import dataclasses
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from kits.gate import MakeGate, gate_config
from kits.waiting import WAIT, in_thread, wait_for
from sqlalchemy import event
from test_cli import gate as run_gate
from test_read_pipeline import ListSource

from hardware.reads import StatusFn
from scanner.app import Gate
from scanner.config import LookupConfig, ReaderConfig
from scanner.decide.model import Direction
from scanner.errors import ConfigError
from scanner.read.hygiene import TOO_LONG

# Loopback, so plain http is allowed; nothing listens here and nothing is sent in these tests.
UNUSED_URL = "http://127.0.0.1:9"


class ClosingTransport(httpx.BaseTransport):
    """An HTTP edge that only records being closed (a client closes its transport)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network in this test", request=request)

    def close(self) -> None:
        self.log.append("api closed")


def online(make_gate: MakeGate, tmp_path: Path, log: list[str]) -> Gate:
    """A gate that would look a code it lacks up online, over a transport that records."""
    return make_gate(tmp_path, api={"url": UNUSED_URL}, lookup=LookupConfig(),
                     transport=ClosingTransport(log))


def runs(log: list[str]) -> list[str]:
    """``log`` with repeats collapsed: the order of kinds of event."""
    return [entry for i, entry in enumerate(log) if i == 0 or log[i - 1] != entry]


# -- closing -------------------------------------------------------------------------------

def test_close_releases_what_it_built_last_built_first(make_gate: MakeGate,
                                                       tmp_path: Path) -> None:
    log: list[str] = []
    gate = online(make_gate, tmp_path, log)
    connections: list[Any] = []
    for engine in (gate.engine, gate.journal_engine):
        event.listen(engine, "checkout", lambda conn, _rec, _proxy: connections.append(conn))
        event.listen(engine, "close", lambda _conn, _rec: log.append("connection closed"))
    gate.gatekeeper.check("UNKNOWN-CODE-1", Direction.IN)  # store and journal hold connections
    log.clear()  # short reads on the way (the settings) return theirs at once
    gate.close()
    # The client was built after the store and journal, whose connections are closed
    # with the engines, built first of all.
    assert runs(log) == ["api closed", "connection closed"]
    for conn in connections:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_close_twice_releases_once_and_a_closed_gate_builds_nothing(
        make_gate: MakeGate, tmp_path: Path) -> None:
    log: list[str] = []
    gate = online(make_gate, tmp_path, log)
    assert gate.api is gate.api
    gate.close()
    gate.close()
    assert log == ["api closed"]
    with pytest.raises(RuntimeError, match="closed"):
        _ = gate.store


def test_parts_never_asked_for_are_not_built(make_gate: MakeGate, tmp_path: Path) -> None:
    log: list[str] = []
    with make_gate(tmp_path, api={"url": UNUSED_URL}, lookup={"deadline_ms": 0},
                   transport=ClosingTransport(log)) as gate:
        gate.gatekeeper.check("UNKNOWN-CODE-1", Direction.IN)
        assert "api" not in gate.parts_built  # offline: no HTTP client for a check
    assert log == []


# -- threads -------------------------------------------------------------------------------

def test_threads_asking_at_once_get_one_api_client(make_gate: MakeGate,
                                                   tmp_path: Path) -> None:
    log: list[str] = []
    gate = online(make_gate, tmp_path, log)
    threads = 16
    start = threading.Barrier(threads)
    got: list[object] = []

    def ask() -> None:
        start.wait(timeout=WAIT)
        got.append(gate.api)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen any race
    try:
        workers = [in_thread(ask) for _ in range(threads)]
        for worker in workers:
            worker.join(timeout=WAIT)
    finally:
        sys.setswitchinterval(interval)
    assert len(got) == threads and len({id(client) for client in got}) == 1
    gate.close()
    assert log == ["api closed"]  # one client was built, so one was closed


# -- a bad API URL -------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://example.com", "ftp://vivenu.com", "https://[::1"])
def test_a_bad_api_url_is_a_config_error_naming_the_key(tmp_path: Path, url: str) -> None:
    # The loader refuses these URLs; a configuration built in code meets the same rule.
    config = gate_config(tmp_path, lookup=LookupConfig())
    with Gate(dataclasses.replace(config, api=dataclasses.replace(config.api, url=url))) as gate, \
            pytest.raises(ConfigError, match=r"^api\.url: "):
        gate.open(Gate.gatekeeper)


@pytest.mark.parametrize("command", [["check", "VT-1"], ["scan", "--source", "stdin"]])
def test_a_bad_api_url_stops_the_command_at_start_in_one_line_exit_2(
        tmp_path: Path, command: list[str]) -> None:
    proc = run_gate(*command, env={"GATE_API_URL": "http://example.com",
                                   "GATE_DB": str(tmp_path / "gate.db")}, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gate: configuration error: api.url: plain http:// is allowed only to loopback, "
        "not to 'example.com'; use https:// (set by GATE_API_URL)"]
    assert proc.stdout == ""


# -- readers and pipelines -----------------------------------------------------------------

def fake_sources(made: list[ListSource], items: list[bytes | str],
                 endless: bool = False) -> dict[str, Any]:
    def fake(reader: ReaderConfig, _on_status: StatusFn) -> ListSource:
        made.append(ListSource(items, name=f"fake:{reader.port}", endless=endless))
        return made[-1]

    return {"fake": fake}


@pytest.fixture
def offline(make_gate: MakeGate, tmp_path: Path) -> MakeGate:
    """``offline(sources=...)``: an offline gate (no lookup) with those readers' sources."""
    return lambda sources=None: make_gate(tmp_path, api={"url": UNUSED_URL}, sources=sources)


def test_a_pipeline_reads_from_the_source_the_reader_names(offline: MakeGate) -> None:
    made: list[ListSource] = []
    results: list[tuple[str, str]] = []
    with offline(fake_sources(made, ["VT-A", "VT-B"])) as gate:
        gate.pipeline(ReaderConfig(source="fake", port="north"), lambda p: p.text.lower(),
                      on_result=lambda p, r: results.append((p.source, r))).run()
    assert [s.name for s in made] == ["fake:north"]
    assert results == [("fake:north", "vt-a"), ("fake:north", "vt-b")]


def test_a_pipeline_applies_its_readers_length_limit(offline: MakeGate) -> None:
    rejected: list[str] = []
    with offline(fake_sources([], ["VT-OK", "VT-TOO-LONG-FOR-THIS-READER"])) as gate:
        stats = gate.pipeline(ReaderConfig(source="fake", max_length=8), lambda p: p.text,
                              on_reject=lambda r: rejected.append(r.reason)).run()
    assert (stats.accepted, rejected) == (1, [TOO_LONG])


def test_a_pipeline_into_the_gatekeeper_journals_each_read(offline: MakeGate) -> None:
    sources = fake_sources([], ["UNKNOWN-CODE-1", "UNKNOWN-CODE-2"])
    with offline(sources) as gate:
        keeper = gate.gatekeeper
        gate.pipeline(ReaderConfig(source="fake"),
                      lambda p: keeper.check(p.text, Direction.OUT)).run()
        rows = gate.journal.entries(None)
    assert [(r["barcode"], r["direction"]) for r in rows] == [
        ("UNKNOWN-CODE-1", "OUT"), ("UNKNOWN-CODE-2", "OUT")]


def test_closing_the_gate_stops_its_running_pipelines(offline: MakeGate) -> None:
    made: list[ListSource] = []
    gate = offline(fake_sources(made, [], endless=True))
    pipelines = [gate.pipeline(ReaderConfig(source="fake", port=name), lambda p: p.text)
                 for name in ("in", "out")]
    runners = [in_thread(p.run) for p in pipelines]
    wait_for(lambda: all(t.is_alive() for t in runners), "pipelines running")
    gate.close()
    for runner in runners:
        runner.join(timeout=WAIT)
    assert not any(t.is_alive() for t in runners)
    assert all(source.stopped.is_set() for source in made)


def test_an_unknown_reader_source_is_a_config_error(offline: MakeGate) -> None:
    with offline() as gate, pytest.raises(ConfigError, match=r"reader\.source"):
        gate.reader(ReaderConfig(source="telepathy"))

