"""How each sync writes (``PageBatch.mode``), against the simulator over loopback: a store in
service (``in_service``: short slices, gentle on the journal's disk) for every sync the gate
may be deciding against, but the first full sync of an event, which writes whole pages: with
SQLite's own checkpoints when the store holds no other event, in bulk beside served ones."""

from __future__ import annotations

from typing import Any

import pytest
from kits.sync import TOKEN, client_fixture, sim_fixture, store_fixture  # noqa: F401

from scanner.config import SyncConfig
from scanner.sim import SimServer, World
from scanner.store.batch import BULK, SLICED, WHOLE, PageBatch
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import VivenuClient


@pytest.fixture
def world() -> World:
    return World(seed=11, events=2, tickets_per_event=120)


class Recording:
    """The real store, noting how each sync's batch writes."""

    def __init__(self, store: TicketStore) -> None:
        self._store = store
        self.asked: list[str] = []

    def page_batch(self, **kwargs: Any) -> PageBatch:
        batch = self._store.page_batch(**kwargs)
        self.asked.append(batch.mode)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run(api: VivenuClient, store: Recording, events: list[str], *,
        reconcile_every: float) -> tuple[list[str], list[str]]:
    """The modes of one run's events and how their listings asked for batches."""
    store.asked.clear()
    syncer = Syncer(api, store, SyncConfig(page_size=50, reconcile_every=reconcile_every),
                    events=tuple(events))
    return [report.mode for report in syncer.run_once()], store.asked


def test_only_a_first_full_sync_writes_whole_pages_in_bulk_beside_served_events(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    first, second = world.event_ids
    recording = Recording(store)
    # A full sync's listing, then its catch-up window (a delta: in service by then).
    assert run(api, recording, [first], reconcile_every=3600) == \
        (["full"], [WHOLE, SLICED])
    # The gate decides for the first event while the second one's first full sync writes:
    # its listing is new rows, written whole, in bulk.
    assert run(api, recording, [first, second], reconcile_every=3600) == \
        (["delta", "full"], [SLICED, BULK, SLICED])
    assert run(api, recording, [first, second], reconcile_every=0) == \
        (["reconcile", "reconcile"], [SLICED] * 4)
    assert store.counts_by_event() == {first: 120, second: 120}


def test_the_report_says_how_a_listing_was_written(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    first, second = world.event_ids
    [one] = Syncer(api, store, SyncConfig(page_size=10), events=(first,)).run_once()
    [two] = Syncer(api, store, SyncConfig(page_size=10), events=(second,)).run_once()
    [again] = Syncer(api, store, SyncConfig(page_size=10, reconcile_every=0),
                     events=(second,)).run_once()
    # 12 pages of tickets each: a listing's whole pages share transactions, a store in
    # service commits every page (its tickets unchanged here: no slice but the cursor's).
    assert (one.written, two.written, again.written) == (WHOLE, BULK, SLICED)
    assert 1 <= two.commits < 12 <= again.commits and again.upserted == 0


def test_serves_other_events_looks_at_every_event_but_the_one_asked(
        store: TicketStore, api: VivenuClient, world: World, sim: SimServer) -> None:
    first, second = world.event_ids
    assert not store.serves_other_events(first)
    Syncer(api, store, SyncConfig(page_size=50), events=(first,)).run_once()
    assert not store.serves_other_events(first)
    assert store.serves_other_events(second) and store.serves_other_events("zzz")
