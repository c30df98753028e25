"""Server time, not device time: sync bookkeeping, decisions and the saved clock offset when
the device clock is years off or jumps. The simulator's ``skew`` puts its clock (Date
headers, new updatedAt stamps) that far from this machine's, so "device clock three years
ahead" is a simulator three years behind."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kits.gate import MakeGate, build_gate
from kits.journal import api_config, running_sim
from kits.sync import TOKEN, client_fixture, server_docs, sim_fixture, store_docs, store_fixture  # noqa: F401
from sqlalchemy import update

from scanner.clock import ClockStamp, utc_now
from scanner.config import SyncConfig
from scanner.databases import make_journal_engine
from scanner.decide.model import Direction, Reason
from scanner.journal import Journal
from scanner.journal.offset import ServerOffset
from scanner.sim import World
from scanner.store.schema import sync_state
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.tickets import parse_iso, utc_iso
from scanner.vivenu.client import VivenuClient

YEARS = 3 * 365 * 86400.0
HALF_YEAR = 182 * 86400.0
# A device clock this far behind the server is within the default clock_bound.
DRIFT = 200.0


# Tickets created long before any server time the tests use, so a server years behind
# still lists them all.
EPOCH_MS = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def world() -> World:
    return World(seed=17, events=1, tickets_per_event=300, epoch_ms=EPOCH_MS)


@pytest.fixture
def event(world: World) -> str:
    return world.event_ids[0]


def syncer(api: Any, store: TicketStore, event: str, **config: Any) -> Syncer:
    return Syncer(api, store, SyncConfig(**{"page_size": 100, **config}), events=(event,))


def server_now(world: World) -> datetime:
    return datetime.fromtimestamp(world.now(), UTC)


# -- sync bookkeeping ------------------------------------------------------------------

class DeviceAhead:
    """The real client as seen from a device whose clock runs ``ahead`` seconds fast: the
    offset it measures is that much more negative (pair it with a syncer clock as fast)."""

    def __init__(self, api: VivenuClient, ahead: float) -> None:
        self._api, self._ahead = api, ahead

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    @property
    def clock_offset(self) -> float | None:
        live = self._api.clock_offset
        return None if live is None else live - self._ahead


def fast_syncer(api: VivenuClient, store: TicketStore, event: str, ahead: float) -> Syncer:
    return Syncer(DeviceAhead(api, ahead), store, SyncConfig(page_size=100), events=(event,),
                  clock=lambda: utc_now() + timedelta(seconds=ahead))


def test_sync_bookkeeping_is_in_server_time_with_the_device_clock_years_ahead(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    fast_syncer(api, store, event, YEARS).run_once()
    state = store.sync_state(event)
    assert state is not None and state.last_full_at and state.delta_until
    for stamp in (state.last_full_at, state.delta_until, state.last_sync_at):
        assert stamp is not None
        assert abs((parse_iso(stamp) - server_now(world)).total_seconds()) < 60


def test_reconciling_survives_a_run_made_while_the_device_clock_was_years_ahead(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    """The device clock is fixed after that run: the next reconcile is due on schedule,
    not years later, and tickets the server deleted meanwhile are swept."""
    fast_syncer(api, store, event, YEARS).run_once()
    assert store.count(event) == 300
    gone = world.delete(5, event)
    [report] = syncer(api, store, event, reconcile_every=0).run_once()
    assert (report.mode, report.swept) == ("reconcile", len(gone))


def test_a_last_full_at_in_the_future_makes_the_reconcile_due(
        api: VivenuClient, store: TicketStore, world: World, event: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Bookkeeping left by a clock that ran ahead (an older version wrote device time) is
    not trusted to postpone the reconcile: it runs now and rewrites it in server time."""
    syncer(api, store, event).run_once()
    future = utc_iso(utc_now() + timedelta(seconds=YEARS))
    with store.engine.begin() as conn:
        conn.execute(update(sync_state).values(last_full_at=future, delta_until=future))
    gone = world.delete(5, event)
    [report] = syncer(api, store, event).run_once()
    assert (report.mode, report.swept) == ("reconcile", len(gone))
    assert store_docs(store) == server_docs(world.current_tickets(event))
    state = store.sync_state(event)
    assert state is not None and state.last_full_at is not None
    assert parse_iso(state.last_full_at) < utc_now() + timedelta(minutes=5)
    assert any("lies in the future" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)


def test_delta_windows_follow_server_time_with_the_device_clock_years_behind(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    world.skew = YEARS
    syncer(api, store, event).run_once()
    [sold] = world.sell(event, 1)
    [report] = syncer(api, store, event).run_once()
    assert report.mode == "delta" and store.get(sold["_id"]) is not None


# -- decisions ---------------------------------------------------------------------------

def timeslot_check(tmp_path: Path, skew: float) -> Reason:
    """Sync from a simulator ``skew`` seconds from the device clock, then check a timeslot
    ticket at a device time inside its slot."""
    world = World(seed=5, events=1, tickets_per_event=60, skew=skew)
    with running_sim(world) as server:
        event = world.event_ids[0]
        device_clock = [utc_now()]
        with build_gate(tmp_path, clock=lambda: device_clock[0], events=(event,),
                       api=api_config(server)) as gate:
            gate.syncer.run_once()
            ticket = next(t for t in gate.store.iter_tickets(event)
                          if t.slot_start and t.status == "VALID")
            assert ticket.slot_start is not None
            device_clock[0] = parse_iso(ticket.slot_start) + timedelta(minutes=5)
            return gate.gatekeeper.check(ticket.barcode, Direction.IN).decision.reason


def test_a_server_half_a_year_ahead_of_a_believable_clock_does_not_close_a_slot(
        tmp_path: Path) -> None:
    """The device clock is believable (after the release, after all the gate has seen);
    a server half a year from it cannot tell it otherwise."""
    assert timeslot_check(tmp_path, HALF_YEAR) is Reason.GRANTED


def test_the_same_timeslot_is_granted_when_both_clocks_agree(tmp_path: Path) -> None:
    assert timeslot_check(tmp_path, 0.0) is Reason.GRANTED


# -- the saved offset and clock jumps ------------------------------------------------------

class DeviceClock:
    """A ClockStamp source whose wall clock can be set (a jump) or the device rebooted."""

    def __init__(self) -> None:
        self.boot, self.anchor = "boot-1", 1.78e9

    def __call__(self) -> ClockStamp:
        return ClockStamp(self.boot, self.anchor)

    def now(self) -> datetime:
        """The wall clock: the anchor plus an hour since boot (a step moves both)."""
        return datetime.fromtimestamp(self.anchor + 3600.0, UTC)

    def jump(self, seconds: float) -> None:
        self.anchor += seconds


class Live:
    """The client's live offset: None before an answer, re-measured by ``answer``."""

    def __init__(self) -> None:
        self.value: float | None = None

    def __call__(self) -> float | None:
        return self.value

    def answer(self, offset: float) -> None:
        self.value = offset


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    engine = make_journal_engine(f"sqlite:///{tmp_path / 'journal.db'}")
    yield Journal(engine, "g1")
    engine.dispose()


def test_a_jump_voids_the_live_offset_until_the_server_answers_again(journal: Journal) -> None:
    clock, live = DeviceClock(), Live()
    offset = ServerOffset(journal, live, stamp=clock, clock=clock.now)
    live.answer(DRIFT)            # device clock 200 s behind the server
    assert offset() == DRIFT
    clock.jump(DRIFT)             # NTP fixes it
    assert offset() == 0.0            # the old measurement would count it twice
    live.answer(0.4)                  # the next answer re-measures
    assert offset() == 0.4
    offset.close()


def test_a_jump_voids_the_saved_offset_too(journal: Journal) -> None:
    clock = DeviceClock()
    journal.save_clock_offset(DRIFT, clock().text())
    offline = ServerOffset(journal, Live(), stamp=clock, clock=clock.now)
    assert offline() == DRIFT
    clock.jump(-DRIFT)
    assert offline() == 0.0


def test_an_offline_restart_after_the_clock_was_set_ignores_the_saved_offset(
        journal: Journal) -> None:
    clock, live = DeviceClock(), Live()
    running = ServerOffset(journal, live, stamp=clock, clock=clock.now)
    live.answer(DRIFT)
    running()
    running.close()                   # saved, with the stamp it was measured under
    assert ServerOffset(journal, Live(), stamp=clock, clock=clock.now)() == DRIFT
    clock.jump(DRIFT)             # the clock is fixed while the gate is down
    assert ServerOffset(journal, Live(), stamp=clock, clock=clock.now)() == 0.0


def test_a_saved_offset_from_another_boot_is_ignored(journal: Journal) -> None:
    clock = DeviceClock()
    journal.save_clock_offset(DRIFT, clock().text())
    clock.boot = "boot-2"
    assert ServerOffset(journal, Live(), stamp=clock, clock=clock.now)() == 0.0


def test_a_saved_offset_without_a_stamp_is_ignored(journal: Journal) -> None:
    """Offsets saved before stamps existed cannot be checked against the clock."""
    journal.save_clock_offset(DRIFT)
    assert ServerOffset(journal, Live(), stamp=DeviceClock())() == 0.0


def test_a_step_within_the_dates_resolution_keeps_the_offset(journal: Journal) -> None:
    clock, live = DeviceClock(), Live()
    offset = ServerOffset(journal, live, stamp=clock, clock=clock.now)
    live.answer(30.0)
    offset()
    clock.jump(0.8)
    assert offset() == 30.0
    offset.close()


def test_scans_after_the_clock_was_fixed_are_stamped_on_device_time(
        tmp_path: Path, make_gate: MakeGate) -> None:
    """The gate's own path: an offset of 200 s saved under the old clock, the clock
    set right, an offline check: stamped now, not 200 s ahead."""
    now = datetime(2031, 3, 1, 12, tzinfo=UTC)
    with make_gate(tmp_path, clock=lambda: now) as gate:
        clock = DeviceClock()
        gate.journal.save_clock_offset(DRIFT, clock().text())
        clock.jump(DRIFT)
        gate.__dict__["clock_offset"] = ServerOffset(gate.journal, Live(), stamp=clock,
                                                     clock=clock.now)
        result = gate.gatekeeper.check("BC0000000001", Direction.IN)
    assert result.scanned_at == utc_iso(now)
