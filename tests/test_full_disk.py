"""A full disk: one clear error, the gate stays closed rather than admit unjournaled, and
nothing already recorded is lost.

SQLite's ``max_page_count`` caps the real database file, so the store meets the same
SQLITE_FULL ("database or disk is full") a full SD card gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kits.gate import MakeGate
from kits.journal import api_config
from sqlalchemy import event

from scanner.app import Gate
from scanner.clock import utc_now
from scanner.decide.model import Direction
from scanner.errors import StoreError
from scanner.sim import SimServer, World
from scanner.tickets import Ticket


def reopen_full(gate: Gate, spare_pages: int) -> Gate:
    """Close ``gate`` and open its databases (store and journal) again, each allowed to grow
    only ``spare_pages`` more pages: every connection of the new gate has the cap."""
    pages = {}
    for name in ("engine", "journal_engine"):
        with getattr(gate, name).connect() as conn:
            pages[name] = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    gate.close()
    full = Gate(gate.config)
    for name, count in pages.items():
        engine = getattr(full, name)

        @event.listens_for(engine, "connect")
        def _cap(dbapi_conn: Any, _record: Any, count: int = count) -> None:
            dbapi_conn.execute(f"PRAGMA max_page_count={count + spare_pages}")

        engine.dispose()  # the schema check's pooled connection predates the cap
    return full


@pytest.fixture
def gate(make_gate: MakeGate, tmp_path: Path, sim_server: SimServer) -> Gate:
    return make_gate(tmp_path, gate_id="north-1", events=tuple(sim_server.world.event_ids),
                     api=api_config(sim_server), clock=utc_now)


def test_sync_into_a_full_store_fails_in_one_line_and_keeps_what_it_had(
        gate: Gate, sim_world: World) -> None:
    gate.syncer.run_once()
    before = {t.id: t for t in gate.store.iter_tickets()}
    for event_id in sim_world.event_ids:
        sim_world.sell(event_id, 400)
    with reopen_full(gate, spare_pages=0) as full:
        with pytest.raises(StoreError, match="full") as info:
            full.syncer.run_once()
        assert "\n" not in str(info.value)
        after = {t.id: t for t in full.store.iter_tickets()}
    # Every ticket it had is still there as it was. A delta writes a store in service in
    # slices, so slices committed before the disk filled stay: whole tickets, as sold.
    assert {i: after.get(i) for i in before} == before
    sold = {doc["_id"]: Ticket.from_api(doc) for event_id in sim_world.event_ids
            for doc in sim_world.current_tickets(event_id)}
    assert all(after[i] == sold[i] for i in after.keys() - before.keys())
    assert len(after) < len(sold)


def test_a_scan_that_cannot_be_journaled_is_refused_and_earlier_scans_survive(
        gate: Gate, sim_world: World) -> None:
    gate.syncer.run_once()
    tickets = [doc["barcode"] for doc in sim_world.current_tickets(sim_world.event_ids[0])]
    returned = [gate.gatekeeper.check(tickets[0], Direction.IN).scan_id]
    with reopen_full(gate, spare_pages=0) as full:
        with pytest.raises(StoreError, match="full"):
            for barcode in tickets[1:]:  # pages have some room; scan until it runs out
                returned.append(full.gatekeeper.check(barcode, Direction.IN).scan_id)
        journaled = [row["scan_id"] for row in full.journal.entries(None)]
    assert journaled == returned  # every check that returned is journaled, nothing else
