"""Property tests of the sync merge: whatever the interleaving of page fetches and server
changes, a full sync plus a delta leaves the store equal to the server's set."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kits.sync import EVENT, ModelApi, server_docs, store_docs

from scanner.config import SyncConfig
from scanner.databases import make_engine
from scanner.errors import PagingError
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer

mutation = st.tuples(st.sampled_from(["sell", "cancel", "change", "delete"]),
                     st.integers(0, 10_000))
scenario = st.fixed_dictionaries({
    "n": st.integers(0, 40),
    "page_size": st.integers(2, 9),
    "prefetch": st.sampled_from([0, 2]),
    # One batch of changes after each page served, for the first pages of the run.
    "script": st.lists(st.lists(mutation, max_size=6), max_size=14),
})
# Generous enough that the catch-up delta always reaches back past T0 (the model's clock
# moves one millisecond per change).
CONFIG = dict(window_overlap=1.0, reconcile_every=10**9)


def _synced(case: dict, *, quiet_delta: bool = True,
            only_during_full: bool = False) -> tuple[ModelApi, TicketStore]:
    api = ModelApi(case["n"])
    api.only_during_full = only_during_full
    api.script = [list(batch) for batch in case["script"]]
    store = TicketStore(make_engine("sqlite://"))
    syncer = Syncer(api, store, SyncConfig(page_size=case["page_size"], **CONFIG),
                    events=(EVENT,), clock=api.clock, prefetch=case["prefetch"])
    # A run may give up (PagingError) when changes erase every anchor id; the next run
    # starts over, and the script runs out, so this ends.
    for _ in range(len(api.script) + 2):
        try:
            syncer.run_once()
            break
        except PagingError:
            continue
    api.script.clear()
    if quiet_delta:
        syncer.run_once()
    return api, store


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_full_and_delta_hold_every_server_ticket_exactly(case: dict) -> None:
    """Every ticket the server lists is stored with exactly its server fields, and every
    other stored ticket is one the server hard-deleted (deltas cannot see deletes)."""
    api, store = _synced(case)
    stored, server = store_docs(store), server_docs(api.docs.values())
    assert {k: stored.get(k) for k in server} == server
    assert set(stored) - set(server) <= api.deleted


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_reconcile_after_changes_equals_server_exactly(case: dict) -> None:
    """A reconciling full sync after the changes sweeps the hard deletes: exact equality
    (the operator's consent applies deletions the guard held back in small events)."""
    api, store = _synced(case)
    reconciling = Syncer(api, store, SyncConfig(page_size=case["page_size"],
                                                window_overlap=1.0, reconcile_every=0),
                         events=(EVENT,), clock=api.clock)
    [report] = reconciling.run_once()
    if report.held:
        [report] = reconciling.run_once(accept_deletions=True)
    assert report.mode == "reconcile"
    assert store_docs(store) == server_docs(api.docs.values())


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_changes_while_a_full_sync_pages_are_caught_by_its_catch_up(case: dict) -> None:
    """One run alone (no later delta) holds every ticket changed while it paged."""
    api, store = _synced(case, quiet_delta=False, only_during_full=True)
    stored, server = store_docs(store), server_docs(api.docs.values())
    assert {k: stored.get(k) for k in server} == server
    assert set(stored) - set(server) <= api.deleted
