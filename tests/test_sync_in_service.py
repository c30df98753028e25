"""Which syncs write a store in service (``PageBatch(in_service=True)``: short slices, gentle
on the journal's disk), against the simulator over loopback: every sync the gate may be
deciding against, which is all but the first full sync of a store holding no other event."""

from __future__ import annotations

from typing import Any

import pytest
from kits.sync import TOKEN, client_fixture, sim_fixture, store_fixture  # noqa: F401

from scanner.config import SyncConfig
from scanner.sim import SimServer, World
from scanner.store.batch import PageBatch
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import VivenuClient


@pytest.fixture
def world() -> World:
    return World(seed=11, events=2, tickets_per_event=120)


class Recording:
    """The real store, noting how each sync asked for its batch."""

    def __init__(self, store: TicketStore) -> None:
        self._store = store
        self.asked: list[bool] = []

    def page_batch(self, *, in_service: bool = False, **kwargs: Any) -> PageBatch:
        self.asked.append(in_service)
        return self._store.page_batch(in_service=in_service, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run(api: VivenuClient, store: Recording, events: list[str], *,
        reconcile_every: float) -> tuple[list[str], list[bool]]:
    """The modes of one run's events and how their listings asked for batches."""
    store.asked.clear()
    syncer = Syncer(api, store, SyncConfig(page_size=50, reconcile_every=reconcile_every),
                    events=tuple(events))
    return [report.mode for report in syncer.run_once()], store.asked


def test_only_the_first_full_sync_of_a_store_serving_no_event_writes_unsliced(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    first, second = world.event_ids
    recording = Recording(store)
    # A full sync's listing, then its catch-up window (a delta: in service by then).
    assert run(api, recording, [first], reconcile_every=3600) == (["full"], [False, True])
    # The gate decides for the first event while the second one's first full sync writes.
    assert run(api, recording, [first, second], reconcile_every=3600) == \
        (["delta", "full"], [True, True, True])
    assert run(api, recording, [first, second], reconcile_every=0) == \
        (["reconcile", "reconcile"], [True] * 4)
    assert store.counts_by_event() == {first: 120, second: 120}


def test_serves_other_events_looks_at_every_event_but_the_one_asked(
        store: TicketStore, api: VivenuClient, world: World, sim: SimServer) -> None:
    first, second = world.event_ids
    assert not store.serves_other_events(first)
    Syncer(api, store, SyncConfig(page_size=50), events=(first,)).run_once()
    assert not store.serves_other_events(first)
    assert store.serves_other_events(second) and store.serves_other_events("zzz")
