"""The deletion guard: a reconciling sync never wipes an event's tickets on a server's word
alone. Against the simulator over real HTTP on loopback, into real SQLite files."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kits.sync import TOKEN, client_fixture, server_docs, sim_fixture, store_docs, store_fixture  # noqa: F401
from test_sync_cli import gate, gate_env, write_config

from scanner.config import SyncConfig
from scanner.sim import SimServer, World
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import TicketPage, VivenuClient

TICKETS = 4000
PAGE = 500


@pytest.fixture
def world() -> World:
    return World(seed=13, events=1, tickets_per_event=TICKETS)


@pytest.fixture
def event(world: World) -> str:
    return world.event_ids[0]


def syncer(api: Any, store: TicketStore, event: str, **config: Any) -> Syncer:
    return Syncer(api, store, SyncConfig(**{"page_size": PAGE, **config}), events=(event,))


def reconciled(api: Any, store: TicketStore, event: str, **config: Any) -> Syncer:
    """A store after its first full sync, and a syncer that reconciles on every run."""
    syncer(api, store, event).run_once()
    assert store.count(event) == TICKETS
    return syncer(api, store, event, reconcile_every=0, **config)


def emptied(world: World, event: str) -> None:
    """The server deletes every ticket of the event (its picks are random: repeat)."""
    while world.count(event):
        world.delete(world.count(event), event)


def settled(world: World) -> None:
    """Wait until the server's clock passes its last change: the simulator stamps changes
    at least 1 ms apart, so 2,000 of them in a burst run ahead of its clock for a while
    and would sit beyond a window pinned at "now" (a later delta reads them)."""
    while world._last_ms >= world.now() * 1000:
        time.sleep(0.05)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


class EmptyListing:
    """The real client, whose ticket listings come back empty while ``empty`` is set (a
    broken server), everything else untouched."""

    def __init__(self, api: VivenuClient) -> None:
        self._api, self.empty, self.pages = api, True, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def ticket_page(self, event_id: str, **kwargs: Any) -> TicketPage:
        self.pages += 1
        page = self._api.ticket_page(event_id, **kwargs)
        return TicketPage([], 0) if self.empty else page


def test_an_emptied_listing_deletes_nothing_and_says_so_once(
        api: VivenuClient, store: TicketStore, world: World, event: str,
        caplog: pytest.LogCaptureFixture) -> None:
    job = reconciled(api, store, event)
    before = store_docs(store)
    emptied(world, event)  # the server now lists nothing for the event
    caplog.set_level(logging.INFO)
    [report] = job.run_once()
    assert (report.held, report.swept, store.count(event)) == (TICKETS, 0, TICKETS)
    assert store_docs(store) == before
    [line] = [w for w in warnings(caplog) if "held back" in w]
    assert f"{TICKETS} of {TICKETS} tickets" in line and "--accept-deletions" in line


def test_a_collapsed_total_stops_the_reconcile_before_writing_a_page(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    """The listing's total fell by more than the share: the run reads one page, writes
    none of it, and records the hold as a collapse."""
    job = reconciled(api, store, event)
    world.change(50, event)       # listed changes the held run must not write either
    before = store_docs(store)
    world.delete(TICKETS // 2, event)
    [report] = job.run_once()
    assert (report.held, report.pages, store_docs(store)) == (TICKETS // 2, 1, before)
    held = store.held_deletions()[event]
    assert (held.kind, held.stored, held.server_total) == ("total", TICKETS, TICKETS // 2)


@pytest.mark.slow
def test_unlisted_tickets_beyond_the_share_are_held_while_listed_ones_are_written(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    """Total unchanged (1,000 deleted, 1,000 sold): the reconcile pages everything and
    writes it, and holds only the sweep of the 1,000 it no longer saw."""
    job = reconciled(api, store, event)
    gone = world.delete(1000, event)
    world.sell(event, 1000)
    settled(world)
    [report] = job.run_once()
    stored, listed = store_docs(store), server_docs(world.current_tickets(event))
    assert report.held == 1000 and report.swept == 0
    assert {k: stored.get(k) for k in listed} == listed
    assert set(stored) - set(listed) == {d["_id"] for d in gone}
    assert store.held_deletions()[event].kind == "sweep"


def test_deletions_up_to_the_share_are_applied(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    job = reconciled(api, store, event)
    world.delete(TICKETS // 10, event)   # exactly 10%: not more than the share
    [report] = job.run_once()
    assert (report.held, report.swept) == (0, TICKETS // 10)
    assert store_docs(store) == server_docs(world.current_tickets(event))
    assert store.held_deletions() == {}


def test_the_share_is_configurable(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    job = reconciled(api, store, event, max_deletion_share=0.5)
    world.delete(TICKETS // 4, event)
    [report] = job.run_once()
    assert (report.held, report.swept) == (0, TICKETS // 4)


def test_accepting_applies_the_held_deletions_and_clears_the_hold(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    job = reconciled(api, store, event)
    emptied(world, event)
    job.run_once()
    [report] = syncer(api, store, event).run_once(accept_deletions=True)
    assert (report.mode, report.swept, store.count(event)) == ("reconcile", TICKETS, 0)
    assert store.held_deletions() == {}


def test_deltas_go_on_while_deletions_are_held(
        api: VivenuClient, store: TicketStore, world: World, event: str) -> None:
    """A held reconcile counts as done: the next runs are deltas, so a cancellation still
    reaches the gate, and the hold stays until someone decides."""
    job = reconciled(api, store, event)
    world.delete(TICKETS // 2, event)
    job.run_once()
    [cancelled] = world.cancel(1, event)
    [report] = syncer(api, store, event).run_once()
    assert report.mode == "delta"
    assert store.get(cancelled["_id"]).status == cancelled["status"]  # type: ignore[union-attr]
    assert event in store.held_deletions()


def test_a_listing_that_recovers_clears_the_hold(
        api: VivenuClient, store: TicketStore, event: str) -> None:
    broken = EmptyListing(api)
    syncer(api, store, event).run_once()
    job = syncer(broken, store, event, reconcile_every=0)
    [held] = job.run_once()
    assert held.held == TICKETS and broken.pages == 1
    broken.empty = False
    [report] = job.run_once()
    assert (report.held, report.swept, store.count(event)) == (0, 0, TICKETS)
    assert store.held_deletions() == {}


def test_a_first_full_sync_is_never_stopped_by_the_guard(
        api: VivenuClient, store: TicketStore, event: str) -> None:
    """No finished full sync yet (no deltas to fall back on): the run pages everything."""
    [report] = syncer(api, store, event).run_once()
    assert (report.mode, report.held, store.count(event)) == ("full", 0, TICKETS)


@pytest.mark.slow
def test_gate_status_shows_held_deletions_and_the_cli_applies_them(
        tmp_path: Path, sim: SimServer, world: World, event: str) -> None:
    env = gate_env(sim, world, tmp_path / "gate.db",
                   write_config(tmp_path / "gate.toml", sync={"reconcile_every": 0.001}))
    assert gate("sync", "--once", env=env).returncode == 0
    emptied(world, event)
    held_run = gate("sync", "--once", env=env)
    assert held_run.returncode == 0, held_run.stderr
    assert [line for line in held_run.stderr.splitlines() if "WARNING" in line] == [
        line for line in held_run.stderr.splitlines() if "held back deleting" in line]
    doc = orjson.loads(gate("status", "--json", env=env).stdout)
    held = doc["events"][event]["held_deletions"]
    assert (doc["events"][event]["tickets"], held["count"], held["kind"]) == (
        TICKETS, TICKETS, "total")
    text = gate("status", env=env).stdout
    assert f"HELD: {TICKETS} of {TICKETS} tickets not deleted" in text
    applied = gate("sync", "--once", "--accept-deletions", env=env)
    assert applied.returncode == 0, applied.stderr
    doc = orjson.loads(gate("status", "--json", env=env).stdout)
    assert (doc["events"][event]["tickets"], doc["events"][event]["held_deletions"]) == (0, None)


def test_accept_deletions_needs_once(tmp_path: Path, sim: SimServer, world: World) -> None:
    env = gate_env(sim, world, tmp_path / "gate.db", write_config(tmp_path / "gate.toml"))
    proc = gate("sync", "--accept-deletions", env=env)
    assert proc.returncode == 2 and "--accept-deletions needs --once" in proc.stderr
