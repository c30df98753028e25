"""A server's Date that lies cannot move the gate's clock: after an honest sync, a simulator
whose Date says 188 days or 3 years off, or replays an old answer, moves no journal stamp
and no timeslot decision, and the status, the kiosk, /metrics and the log say so. The device
and the simulator run on one clock the test sets; ``World.skew`` puts the Date off it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kits import loopback
from kits.gate import build_gate, write_toml
from kits.gpio import make
from kits.journal import api_config, running_sim
from kits.kiosk import free_port

from scanner.act import ActStage
from scanner.app import Gate
from scanner.app.kiosk import from_gate
from scanner.cli.status_cmd import gather, render
from scanner.clock_guard import BACKWARDS, CORRECTS, OUT_OF_BOUND, UNSET
from scanner.config import RunConfig, load_config
from scanner.decide.model import Direction, Reason
from scanner.errors import ConfigError
from scanner.kiosk import WebOptions
from scanner.sim import World
from scanner.tickets import Ticket, parse_iso, utc_iso

DAY = 86400.0
YEARS = 3 * 365 * DAY
# The simulator's first timeslot; 188 days later is the December the gate runs in.
SLOT = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
DECEMBER = SLOT + timedelta(days=188, minutes=5)
LIES = {"188 days behind": -188 * DAY, "3 years ahead": YEARS, "3 years behind": -YEARS}


class Clocks:
    """The device's wall clock, and the simulator's (the same, unless a Date is replayed)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.replayed: float | None = None  # a Date frozen in the past: a cache's answer

    def device(self) -> datetime:
        return self.now

    def server(self) -> float:
        return self.now.timestamp() if self.replayed is None else self.replayed


@dataclass
class Rig:
    gate: Gate
    world: World
    clocks: Clocks
    event: str

    def sync(self) -> None:
        """A sync, then what the daemon's sync job does after it."""
        self.gate.syncer.run_once()
        self.gate.clock_guard.refresh()

    def slot_ticket(self, start: datetime = SLOT) -> Ticket:
        return next(t for t in self.gate.store.iter_tickets(self.event)
                    if t.slot_start == utc_iso(start) and t.status == "VALID")

    def plain_ticket(self) -> Ticket:
        return next(t for t in self.gate.store.iter_tickets(self.event)
                    if not t.slot_start and t.status == "VALID")

    def check(self, ticket: Ticket) -> tuple[Reason, datetime]:
        result = self.gate.gatekeeper.check(ticket.barcode, Direction.IN)
        return result.decision.reason, parse_iso(result.scanned_at)


@contextmanager
def rig(tmp_path: Path, now: datetime, **config: Any) -> Iterator[Rig]:
    clocks = Clocks(now)
    world = World(seed=5, events=1, tickets_per_event=80, clock=clocks.server)
    with running_sim(world) as server:
        event = world.event_ids[0]
        with build_gate(tmp_path, clock=clocks.device, events=(event,),
                       api=api_config(server), **config) as gate:
            yield Rig(gate, world, clocks, event)


def near(stamp: datetime, expected: datetime) -> bool:
    """Within the Date header's resolution."""
    return abs(stamp - expected) <= timedelta(seconds=2)


@pytest.fixture
def december(tmp_path: Path) -> Iterator[Rig]:
    """A gate in December after an honest sync."""
    with rig(tmp_path, DECEMBER) as r:
        r.sync()
        assert r.gate.clock_guard.state().fine
        yield r


# -- stamps and decisions ------------------------------------------------------------------

@pytest.mark.parametrize("skew", LIES.values(), ids=LIES.keys())
def test_a_lying_date_moves_no_stamp(december: Rig, skew: float) -> None:
    december.world.skew = skew
    december.sync()
    _reason, stamped = december.check(december.plain_ticket())
    assert near(stamped, DECEMBER)
    assert december.gate.journal.newest_scanned_at() == utc_iso(stamped)


@pytest.mark.parametrize("skew", LIES.values(), ids=LIES.keys())
def test_a_slot_closed_188_days_ago_stays_closed_whatever_the_date_says(
        december: Rig, skew: float) -> None:
    """On main the server's June made this June ticket GRANTED in December."""
    december.world.skew = skew
    december.sync()
    reason, _stamped = december.check(december.slot_ticket())
    assert reason is Reason.TIMESLOT_TOO_LATE


@pytest.mark.parametrize("skew", LIES.values(), ids=LIES.keys())
def test_a_lying_date_locks_nobody_out_of_an_open_slot(tmp_path: Path, skew: float) -> None:
    with rig(tmp_path, SLOT + timedelta(minutes=5)) as r:
        r.sync()
        r.world.skew = skew
        r.sync()
        assert r.check(r.slot_ticket()) [0] is Reason.GRANTED


def test_a_replayed_old_date_is_refused(december: Rig) -> None:
    """A cache answers with the Date of six hours ago: the same server said later before."""
    december.clocks.replayed = DECEMBER.timestamp()
    december.clocks.now = DECEMBER + timedelta(hours=6)
    december.sync()
    state = december.gate.clock_guard.state()
    _reason, stamped = december.check(december.plain_ticket())
    assert state.server == BACKWARDS and near(stamped, december.clocks.now)


def test_a_replay_within_the_bound_is_still_backwards(december: Rig) -> None:
    """Two minutes old, inside the five-minute bound, but behind what the server said."""
    december.clocks.replayed = DECEMBER.timestamp()
    december.clocks.now = DECEMBER + timedelta(minutes=2)
    december.sync()
    assert december.gate.clock_guard.state().server == BACKWARDS


def test_a_small_drift_is_adopted(december: Rig) -> None:
    december.world.skew = 40.0
    december.sync()
    _reason, stamped = december.check(december.plain_ticket())
    assert near(stamped, DECEMBER + timedelta(seconds=40))
    assert december.gate.clock_guard.state().fine


def test_a_wider_bound_adopts_what_the_default_refuses(tmp_path: Path) -> None:
    with rig(tmp_path, DECEMBER, run=RunConfig(clock_bound=3600.0)) as r:
        r.sync()
        r.world.skew = 1800.0
        r.sync()
        assert near(r.check(r.plain_ticket())[1], DECEMBER + timedelta(minutes=30))


def test_the_last_good_offset_is_kept_through_a_disagreement(december: Rig) -> None:
    december.world.skew = 40.0
    december.sync()
    december.world.skew = -188 * DAY
    december.sync()
    assert near(december.check(december.plain_ticket())[1], DECEMBER + timedelta(seconds=40))


# -- saying it -----------------------------------------------------------------------------

@pytest.mark.parametrize("skew", LIES.values(), ids=LIES.keys())
def test_gate_status_says_the_clocks_disagree(december: Rig, skew: float) -> None:
    december.world.skew = skew
    december.sync()
    doc = gather(december.gate)
    assert doc["clock"]["disagrees"] is True
    assert doc["clock"]["server"] in (OUT_OF_BOUND, BACKWARDS)
    assert abs(doc["clock"]["server_offset_s"] - skew) < 2
    assert "CLOCK DISAGREES" in render(doc) and "clock ok" not in render(doc)


def test_gate_status_in_another_process_says_it_too(tmp_path: Path) -> None:
    """``gate status`` asks no server: it reads the verdict the daemon saved."""
    with rig(tmp_path, DECEMBER) as r:
        r.sync()
        r.world.skew = -188 * DAY
        r.sync()
        r.gate.clock_guard.state()
        r.gate.clock_offset.flush()
        config = r.gate.config
    with Gate(config, clock=lambda: DECEMBER) as status_gate:
        doc = gather(status_gate)
    assert doc["clock"]["disagrees"] is True and "CLOCK DISAGREES" in render(doc)


def test_the_log_says_it_at_error(december: Rig, caplog: pytest.LogCaptureFixture) -> None:
    december.world.skew = -188 * DAY
    december.sync()
    december.gate.clock_guard.check()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("server clock refused" in m for m in errors)
    assert any("CLOCK DISAGREES" in m for m in errors)


def test_the_kiosk_page_and_metrics_say_it(december: Rig, tmp_path: Path) -> None:
    december.world.skew = -188 * DAY
    december.sync()
    gate, outputs = december.gate, make()
    stage = ActStage(outputs, gate.journal)
    web = WebOptions(host="127.0.0.1", port=free_port(), pin_file=str(tmp_path / "pin"))
    guard = gate.clock_guard
    kiosk = from_gate(gate, stage, web, health=lambda: (True, []),
                      clock_ok=lambda: guard.state().fine).start()
    try:
        base = f"http://127.0.0.1:{web.port}"
        state = loopback.get(f"{base}/api/state").json()
        metrics = loopback.get(f"{base}/metrics").text
    finally:
        kiosk.stop()
        outputs.close()
    assert state["clock"]["disagrees"] is True
    assert any(b["kind"] == "clock" and "disagrees" in b["text"] for b in state["banners"])
    assert "gate_clock_disagreement 1.0" in metrics
    assert "gate_clock_server_offset_seconds -16243199.5" in metrics
    assert "gate_clock_offset_seconds 0.5" in metrics


# -- a device clock that is not believable ---------------------------------------------------

def test_an_unset_clock_takes_the_servers_time(tmp_path: Path) -> None:
    """A Pi without RTC boots in 1970: the server's Date corrects it, and decides slots."""
    with rig(tmp_path, DECEMBER) as r:
        r.clocks.now = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
        r.world.skew = DECEMBER.timestamp() - r.clocks.now.timestamp()
        r.sync()
        reason, stamped = r.check(r.slot_ticket())
        state = r.gate.clock_guard.state()
    assert reason is Reason.TIMESLOT_TOO_LATE and near(stamped, DECEMBER)
    assert (state.state, state.server, state.trusted) == (UNSET, CORRECTS, True)


def synced_store(tmp_path: Path) -> Gate:
    """A store synced, and a scan journaled, in December; closed."""
    with rig(tmp_path, DECEMBER) as r:
        r.sync()
        r.check(r.plain_ticket())
        return r.gate


def offline_check(gate: Gate, ticket: Ticket, now: datetime) -> tuple[Reason, str]:
    with Gate(replace(gate.config, api=replace(gate.config.api, url="http://127.0.0.1:9")),
              clock=lambda: now) as offline:
        result = offline.gatekeeper.check(ticket.barcode, Direction.IN)
        return result.decision.reason, result.scanned_at


def test_an_unset_clock_without_a_server_denies_slots_and_admits_the_rest(
        tmp_path: Path) -> None:
    gate = synced_store(tmp_path)
    with Gate(gate.config) as reader:
        slot = next(t for t in reader.store.iter_tickets(gate.config.events[0])
                    if t.slot_start and t.status == "VALID")
        plain = next(t for t in reader.store.iter_tickets(gate.config.events[0])
                     if not t.slot_start and t.status == "VALID"
                     and not reader.journal.history(t.id).scans)
    boot = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
    assert offline_check(gate, slot, boot) == (Reason.CLOCK_UNTRUSTED, utc_iso(boot))
    assert offline_check(gate, plain, boot)[0] is Reason.GRANTED


def test_a_clock_behind_the_journal_and_a_date_behind_it_too_deny_slots(
        tmp_path: Path) -> None:
    """The device says a week ago, the server a month ago: neither is after what the gate
    journaled in December, so no slot is decided on either."""
    with rig(tmp_path, DECEMBER) as r:
        r.sync()
        r.check(r.plain_ticket())
        r.gate.clock_offset.flush()
        config = r.gate.config
        week_ago = DECEMBER - timedelta(days=7)
        with Gate(config, clock=lambda: week_ago) as behind:
            r.world.skew = -23 * DAY
            behind.syncer.run_once()
            result = behind.gatekeeper.check(r.slot_ticket().barcode, Direction.IN)
            state = behind.clock_guard.state()
    assert result.decision.reason is Reason.CLOCK_UNTRUSTED
    assert result.scanned_at == utc_iso(week_ago)
    assert not state.trusted and state.server == BACKWARDS


# -- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [1.0, 200000.0, "soon"])
def test_a_bad_clock_bound_is_refused_by_name(tmp_path: Path, value: float | str) -> None:
    path = write_toml(tmp_path / "gate.toml", {"run": {"clock_bound": value}})
    with pytest.raises(ConfigError, match=r"run\.clock_bound"):
        load_config(path)
