"""The clock guard: a device clock unset or behind what the gate has seen is detected, the
gate keeps deciding, and scans are stamped with the server's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from test_daemon import Rig
from test_hardware_kit import wait_for

from scanner.app import Gate
from scanner.cli.status_cmd import gather, render
from scanner.clock_guard import BEHIND, OK, UNSET, ClockGuard
from scanner.config import GateConfig
from scanner.decide.model import Direction
from scanner.tickets import parse_iso

NOW = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)
SEEN = "2026-06-01T18:00:00.000Z"


def guard(now: datetime, *seen: str | None, offset: float = 0.0) -> ClockGuard:
    return ClockGuard(lambda: now, lambda: seen, lambda: offset)


def test_a_clock_at_or_after_what_the_gate_saw_is_ok() -> None:
    assert guard(NOW + timedelta(seconds=5), SEEN, None).state().state == OK


def test_a_clock_before_the_newest_journal_entry_is_behind() -> None:
    state = guard(NOW - timedelta(days=2), SEEN).state()
    assert state.state == BEHIND and not state.corrected
    assert "no server offset yet" in state.line()


def test_a_clock_from_1970_is_unset() -> None:
    assert guard(datetime(1970, 1, 1, tzinfo=UTC)).state().state == UNSET


def test_a_known_server_offset_corrects_a_clock_behind() -> None:
    state = guard(NOW - timedelta(days=2), SEEN, offset=2 * 86400 + 30).state()
    assert state.state == BEHIND and state.corrected
    assert state.stamped > SEEN and "server offset +172830 s" in state.line()


def test_gate_status_shows_the_clock_state(tmp_path: Path) -> None:
    config = GateConfig(gate_id="c1", db=str(tmp_path / "gate.db"))
    with Gate(config) as gate:  # a scan journaled when the clock was right
        gate.gatekeeper.check("SOME-UNKNOWN-CODE", Direction.IN)
    behind = datetime.now(UTC) - timedelta(days=3)
    with Gate(config, clock=lambda: behind) as gate:
        doc = gather(gate)
    assert doc["clock"]["state"] == BEHIND
    assert "clock behind the last known time" in render(doc)


def test_the_daemon_behind_the_server_keeps_deciding_and_stamps_server_time(
        tmp_path: Path, sim_server: Any) -> None:
    sim_server.world.skew = 2 * 86400.0  # the device clock is two days behind the server's
    rig = Rig(tmp_path, sim_server)
    try:
        wait_for(lambda: rig.gate.api.clock_offset is not None, "a server answer")
        rig.source.codes.put("UNKNOWN-CODE-AFTER-SYNC")
        [entry] = rig.decided(1)
        rig.gate.clock_guard.refresh()  # the journal now holds a scan on server time
        state = rig.gate.clock_guard.state()
    finally:
        rig.close()
    server_now = datetime.fromtimestamp(sim_server.world.now(), UTC)
    assert abs(parse_iso(entry["scanned_at"]) - server_now) < timedelta(minutes=1)
    assert state.state == BEHIND and state.corrected
