"""The clock guard's rule: a device clock unset or behind what the gate has seen is detected;
a server's Date is adopted only within the bound of a believable device clock, or as a
correction of one that is not, and never when it runs backwards; the state says which."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kits.gate import MakeGate
from kits.waiting import wait_for
from test_daemon import Rig

from scanner.cli.status_cmd import gather, render
from scanner.clock import ClockStamp, utc_now
from scanner.clock_guard import (
    AGREES,
    BACKWARDS,
    BEHIND,
    CORRECTS,
    NO_ANSWER,
    OK,
    OUT_OF_BOUND,
    UNSET,
    ClockState,
    ServerSeen,
    device_state,
    judge,
)
from scanner.decide.model import Direction
from scanner.tickets import parse_iso

NOW = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)
BOUND = timedelta(minutes=5)
STAMP = ClockStamp("boot-1", 1.7e9)


def verdict(claim: datetime, device: datetime = NOW, *, floor: datetime | None = None,
            seen: ServerSeen | None = None, stamp: ClockStamp = STAMP) -> str:
    believable = device_state(device, floor, BOUND) == OK
    return judge(claim, device, believable=believable, floor=floor, seen=seen, stamp=stamp,
                 bound=BOUND)


# -- the device clock ----------------------------------------------------------------------

def test_a_clock_at_or_after_what_the_gate_saw_is_ok() -> None:
    assert device_state(NOW + timedelta(seconds=5), NOW, BOUND) == OK


def test_a_clock_within_the_bound_below_what_the_gate_saw_is_ok() -> None:
    """Stamps made with an adopted offset may lead the device clock by the bound."""
    assert device_state(NOW - timedelta(minutes=4), NOW, BOUND) == OK


def test_a_clock_before_the_newest_time_seen_is_behind() -> None:
    assert device_state(NOW - timedelta(days=2), NOW, BOUND) == BEHIND


def test_a_clock_from_1970_is_unset() -> None:
    assert device_state(datetime(1970, 1, 1, tzinfo=UTC), None, BOUND) == UNSET


# -- the server's claim ----------------------------------------------------------------------

def test_a_small_drift_agrees() -> None:
    assert verdict(NOW + timedelta(seconds=40)) == AGREES


@pytest.mark.parametrize("days", [-188, 3 * 365, -3 * 365])
def test_a_claim_days_away_from_a_believable_device_clock_is_out_of_bound(days: int) -> None:
    assert verdict(NOW + timedelta(days=days)) == OUT_OF_BOUND


def test_a_claim_before_what_the_same_server_said_is_backwards() -> None:
    """Seen an hour ago at +60 s under the same clock: now it should say NOW + 60 s at least;
    a replay of a Date two minutes old is within the bound but still backwards."""
    seen = ServerSeen(NOW - timedelta(minutes=59), NOW - timedelta(hours=1), STAMP)
    assert verdict(NOW - timedelta(minutes=1), seen=seen) == BACKWARDS
    assert verdict(NOW + timedelta(seconds=61), seen=seen) == AGREES


def test_after_a_reboot_the_seen_time_is_a_floor_only() -> None:
    seen = ServerSeen(NOW - timedelta(days=1), NOW - timedelta(days=1), STAMP)
    rebooted = ClockStamp("boot-2", 0.0)
    unset = datetime(1970, 1, 1, tzinfo=UTC)
    assert verdict(NOW, unset, floor=seen.server, seen=seen, stamp=rebooted) == CORRECTS
    assert verdict(NOW - timedelta(days=2), unset, floor=seen.server, seen=seen,
                   stamp=rebooted) == BACKWARDS


def test_an_unset_clock_is_corrected_by_any_claim_after_what_the_gate_saw() -> None:
    unset = datetime(1970, 1, 1, tzinfo=UTC)
    assert verdict(NOW + timedelta(days=3), unset, floor=NOW) == CORRECTS
    assert verdict(NOW - timedelta(days=3), unset, floor=NOW) == BACKWARDS


def test_a_set_clock_and_the_server_agreeing_below_what_the_gate_saw_are_believed() -> None:
    """The journal's newest stamp is three years ahead (a clock that ran ahead, corrected
    since): a device clock and a server's Date that agree outvote it; either alone does not."""
    floor = NOW + timedelta(days=3 * 365)
    assert device_state(NOW, floor, BOUND) == BEHIND
    assert verdict(NOW + timedelta(seconds=30), floor=floor) == AGREES
    assert verdict(NOW - timedelta(days=1), floor=floor) == BACKWARDS  # nor does it agree
    unset = datetime(1970, 1, 1, tzinfo=UTC)
    assert verdict(unset + timedelta(seconds=30), unset, floor=floor) == BACKWARDS
    seen = ServerSeen(NOW - timedelta(minutes=59), NOW - timedelta(hours=1), STAMP)
    assert verdict(NOW - timedelta(minutes=1), floor=floor, seen=seen) == BACKWARDS
    # An offset saved from an earlier answer, added to the device clock, is no second clock.
    assert judge(NOW + timedelta(seconds=30), NOW, believable=False, floor=floor, seen=None,
                 stamp=STAMP, bound=BOUND, live=False) == BACKWARDS


def test_the_seen_time_survives_as_text() -> None:
    seen = ServerSeen(NOW, NOW - timedelta(seconds=3), STAMP)
    assert ServerSeen.parse(seen.text()) == seen
    assert ServerSeen.parse("garbage") is None


# -- the report ------------------------------------------------------------------------------

def state(device: str = OK, server: str = AGREES, *, trusted: bool = True,
          offset: float = 0.4, claimed: float | None = 0.4) -> ClockState:
    return ClockState(device, server, "2026-06-01T18:00:00.000Z", None, offset, claimed,
                      300.0, trusted, "2026-06-01T18:00:00.400Z")


def test_agreeing_clocks_say_clock_ok() -> None:
    assert state().line().startswith("clock ok")


@pytest.mark.parametrize("server", [OUT_OF_BOUND, BACKWARDS])
def test_a_refused_server_clock_is_never_clock_ok(server: str) -> None:
    line = state(server=server, claimed=-188 * 86400.0).line()
    assert "clock ok" not in line and "CLOCK DISAGREES" in line and "-16243200 s" in line
    assert state(server=server).to_json()["disagrees"] is True


def test_no_trusted_time_says_timeslots_are_denied() -> None:
    line = state(UNSET, NO_ANSWER, trusted=False, offset=0.0, claimed=None).line()
    assert line.startswith("clock unset") and "CLOCK_UNTRUSTED" in line


def test_a_clock_behind_a_time_the_server_disowns_says_a_clock_ran_ahead() -> None:
    line = state(BEHIND, AGREES).line()
    assert line.startswith("clock behind the last known time") and "ran ahead" in line
    assert "CLOCK_UNTRUSTED" not in line and "CLOCK DISAGREES" not in line


def test_a_corrected_clock_says_the_offset() -> None:
    corrected = state(BEHIND, CORRECTS, offset=2 * 86400 + 30.0)
    assert corrected.corrected and "server offset +172830 s" in corrected.line()


# -- the gate --------------------------------------------------------------------------------

def test_gate_status_shows_a_clock_behind_the_journal(make_gate: MakeGate,
                                                     tmp_path: Path) -> None:
    with make_gate(tmp_path, clock=utc_now) as gate:  # a scan journaled when the clock was right
        gate.gatekeeper.check("SOME-UNKNOWN-CODE", Direction.IN)
    behind = datetime.now(UTC) - timedelta(days=3)
    with make_gate(tmp_path, clock=lambda: behind) as gate:
        doc = gather(gate)
    assert doc["clock"]["state"] == BEHIND and doc["clock"]["trusted"] is False
    assert "clock behind the last known time" in render(doc)


@pytest.mark.slow
def test_the_daemon_behind_its_journal_takes_the_servers_time(
        make_gate: MakeGate, tmp_path: Path, sim_server: Any) -> None:
    """The device clock is two days behind what this gate journaled: it is not believable,
    and the server's Date (not before anything seen) corrects it."""
    with make_gate(tmp_path, gate_id=Rig.GATE_ID, clock=utc_now) as gate:
        gate.gatekeeper.check("SOME-UNKNOWN-CODE", Direction.IN)
    behind = timedelta(days=2)
    rig = Rig(tmp_path, sim_server, clock=lambda: datetime.now(UTC) - behind)
    try:
        wait_for(lambda: rig.gate.api.clock_offset is not None, "a server answer")
        rig.source.codes.put("UNKNOWN-CODE-AFTER-SYNC")
        entry = rig.decided(2)[-1]
        state = rig.gate.clock_guard.state()
    finally:
        rig.close()
    server_now = datetime.fromtimestamp(sim_server.world.now(), UTC)
    assert abs(parse_iso(entry["scanned_at"]) - server_now) < timedelta(minutes=1)
    assert state.state == BEHIND and state.server == CORRECTS and state.corrected


@pytest.mark.slow
def test_a_journal_written_years_ahead_locks_no_timeslot_once_the_clocks_agree(
        make_gate: MakeGate, tmp_path: Path, sim_server: Any) -> None:
    """A scan was journaled while the device clock ran three years ahead; NTP set it right
    since, and the server's Date agrees with it: the gate trusts the time again."""
    ahead = datetime.now(UTC) + timedelta(days=3 * 365)
    with make_gate(tmp_path, gate_id=Rig.GATE_ID, clock=lambda: ahead) as gate:
        gate.gatekeeper.check("SOME-UNKNOWN-CODE", Direction.IN)
    rig = Rig(tmp_path, sim_server)
    try:
        wait_for(lambda: rig.gate.api.clock_offset is not None, "a server answer")
        wait_for(lambda: rig.gate.clock_guard.state().trusted, "a trusted time")
        state = rig.gate.clock_guard.state()
    finally:
        rig.close()
    assert (state.state, state.server, state.trusted) == (BEHIND, AGREES, True)
    assert "ran ahead" in state.line()


def test_the_daemon_says_a_lying_server_in_its_status_and_log(
        tmp_path: Path, sim_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A server two days ahead of a believable device clock: scans keep device time, the
    STATUS line and an ERROR log line say the clocks disagree."""
    sim_server.world.skew = 2 * 86400.0
    rig = Rig(tmp_path, sim_server)
    try:
        wait_for(lambda: rig.gate.api.clock_offset is not None, "a server answer")
        rig.source.codes.put("UNKNOWN-CODE-AFTER-SYNC")
        [entry] = rig.decided(1)
        wait_for(lambda: "CLOCK DISAGREES" in rig.daemon.supervisor.summary(),
                 "the STATUS line")
    finally:
        rig.close()
    assert abs(parse_iso(entry["scanned_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert any(r.levelno >= logging.ERROR and "CLOCK DISAGREES" in r.getMessage()
               for r in caplog.records if r.name == "scanner.clock")
