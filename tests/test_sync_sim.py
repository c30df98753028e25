"""The syncer against the simulator over real HTTP on loopback, into real SQLite files."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kits.sync import TOKEN, client_fixture, server_docs, sim_fixture, store_docs, store_fixture  # noqa: F401

from scanner.config import SyncConfig
from scanner.errors import ProtocolError, ServerUnavailable
from scanner.sim import SimServer, World
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import VivenuClient

PAGE = 50


@pytest.fixture
def world() -> World:
    return World(seed=11, events=1, tickets_per_event=600)


def syncer(api: Any, store: TicketStore, world: World, **config: Any) -> Syncer:
    settings = {"page_size": PAGE, **config}
    return Syncer(api, store, SyncConfig(**settings), events=tuple(world.event_ids))


def server(world: World) -> dict[str, dict[str, Any]]:
    return server_docs(world.current_tickets(world.event_ids[0]))


def test_full_and_delta_under_changes_every_page_hold_the_server_set(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    """Tickets change after every page served; after full + delta every listed ticket is
    stored exactly, and any extra is one the server hard-deleted."""
    sim.faults.update(mutate_per_page=4)
    job = syncer(api, store, world)
    job.run_once()
    sim.faults.update(mutate_per_page=0)
    job.run_once()
    stored, listed = store_docs(store), server(world)
    assert {k: stored.get(k) for k in listed} == listed
    assert all(world.find(doc["barcode"]) is None for k, doc in stored.items()
               if k not in listed)


def test_a_server_capping_its_pages_below_top_is_synced_whole(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    """It serves 40 tickets a page, whatever ``top`` asks: every ticket is stored, by a
    full sync and by a reconcile, and the reconcile deletes none."""
    sim.faults.update(page_cap=40)
    syncer(api, store, world, page_size=100).run_once()
    assert store_docs(store) == server(world)
    [report] = syncer(api, store, world, page_size=100, reconcile_every=0).run_once()
    assert (report.mode, report.swept) == ("reconcile", 0)
    assert store_docs(store) == server(world)


def test_reconcile_sweeps_hard_deletes_to_exact_equality(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    syncer(api, store, world).run_once()
    gone = world.delete(7, world.event_ids[0])
    [report] = syncer(api, store, world, reconcile_every=0).run_once()
    assert (report.mode, report.swept) == ("reconcile", len(gone))
    assert store_docs(store) == server(world)


def test_429_5xx_and_dropped_connections_are_retried(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    sim.faults.update(rate_limit=3, retry_after=0, error_rate=0.2, drop_rate=0.1)
    syncer(api, store, world).run_once()
    assert store_docs(store) == server(world)


def test_malformed_page_aborts_the_run_and_leaves_the_store_unchanged(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    job = syncer(api, store, world)
    job.run_once()
    before = store_docs(store)
    world.change(30, world.event_ids[0])
    sim.faults.update(malformed_pages=1)
    with pytest.raises(ProtocolError):
        job.run_once()
    assert store_docs(store) == before


def test_run_after_a_malformed_page_converges(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    job = syncer(api, store, world)
    sim.faults.update(malformed_pages=1)
    with pytest.raises(ProtocolError):
        job.run_once()
    job.run_once()
    assert store_docs(store) == server(world)


class FailingAfter:
    """The real client, whose ticket pages fail after ``pages`` of them (a dead uplink)."""

    def __init__(self, api: VivenuClient, pages: int) -> None:
        self._api, self._left = api, pages
        self.skips: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def ticket_page(self, event_id: str, **kwargs: Any) -> Any:
        self.skips.append(kwargs["skip"])
        if self._left <= 0:
            raise ServerUnavailable("uplink gone")
        self._left -= 1
        return self._api.ticket_page(event_id, **kwargs)


def test_interrupted_full_sync_resumes_where_it_stopped(
        api: VivenuClient, store: TicketStore, world: World) -> None:
    with pytest.raises(ServerUnavailable):
        syncer(FailingAfter(api, 4), store, world, ).run_once()
    state = store.sync_state(world.event_ids[0])
    assert state is not None and state.full_in_progress and state.full_skip == 4 * PAGE - 3 * 8
    again = FailingAfter(api, 10**6)
    [report] = syncer(again, store, world).run_once()
    assert report.resumed and again.skips[0] == state.full_skip - 8
    assert store_docs(store) == server(world)


def test_token_never_appears_in_logs(api: VivenuClient, store: TicketStore, world: World,
                                     sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim.faults.update(rate_limit=2, retry_after=0, malformed_pages=1)
    with pytest.raises(ProtocolError):
        syncer(api, store, world).run_once()
    syncer(api, store, world).run_once()
    assert caplog.records
    assert TOKEN not in caplog.text
