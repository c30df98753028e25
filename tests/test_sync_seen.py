"""The reconcile's seen marks (``scanner.store.seen``) against the simulator over loopback:
an unchanged ticket's row is never written, a ticket the server no longer lists is swept,
and a run SIGKILLed mid-listing or between its sweep and its close is finished by the next
run, sweeping exactly the missing tickets."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kits.sync import TOKEN, client_fixture, server_docs, sim_fixture, store_docs, store_fixture  # noqa: F401

from scanner.config import SyncConfig
from scanner.sim import SimServer, World
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import VivenuClient

PAGE = 50
TICKETS = 600
GONE = 7


@pytest.fixture
def world() -> World:
    return World(seed=5, events=1, tickets_per_event=TICKETS)


def syncer(api: Any, store: TicketStore, world: World) -> Syncer:
    # reconcile_every=0: every run after the first full sync reconciles.
    return Syncer(api, store, SyncConfig(page_size=PAGE, reconcile_every=0),
                  events=tuple(world.event_ids))


def db_path(store: TicketStore) -> Path:
    return Path(store.engine.url.database or "")


def watch_ticket_writes(path: Path) -> None:
    """Log every INSERT, UPDATE and DELETE of a ticket row into ``touched``."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE touched (kind TEXT, id TEXT)")
        for kind, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            conn.execute(f"CREATE TRIGGER watch_{kind.lower()} AFTER {kind} ON tickets"
                         f" BEGIN INSERT INTO touched VALUES ('{kind}', {row}.id); END")


def touched(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT kind, id FROM touched").fetchall())


def all_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM tickets ORDER BY id").fetchall()


def test_a_reconcile_of_unchanged_tickets_writes_no_ticket_row(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    syncer(api, store, world).run_once()
    path = db_path(store)
    before = all_rows(path)
    watch_ticket_writes(path)
    [report] = syncer(api, store, world).run_once()
    assert (report.mode, report.upserted, report.swept, report.total) == \
        ("reconcile", 0, 0, TICKETS)
    assert touched(path) == []
    assert all_rows(path) == before
    assert store.seen_marks(world.event_ids[0]) == 0  # cleared once the run closed


def test_a_ticket_the_server_no_longer_lists_is_swept_and_nothing_else_written(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    syncer(api, store, world).run_once()
    path = db_path(store)
    watch_ticket_writes(path)
    gone = world.delete(GONE, world.event_ids[0])
    [report] = syncer(api, store, world).run_once()
    assert (report.mode, report.swept) == ("reconcile", GONE)
    assert touched(path) == sorted(("DELETE", doc["_id"]) for doc in gone)
    assert store_docs(store) == server_docs(world.current_tickets(world.event_ids[0]))


# A reconcile in a child process, SIGKILLed at a chosen point: "page" when it asks for
# its ``KILL_AT``-th page (the pages before it committed: a pause lets the batch's span
# run out), "sweep" right after the sweep, before the run is closed.
_KILLED_RECONCILE = textwrap.dedent("""
    import os, signal, sys, time
    from scanner.config import Secret, SyncConfig
    from scanner.databases import make_engine
    from scanner.store.tickets import TicketStore
    from scanner.sync.syncer import Syncer
    from scanner.vivenu.client import VivenuClient

    url, token, db, event_id, point, kill_at, page = sys.argv[1:8]
    kill_at, page = int(kill_at), int(page)

    class Dying:
        def __init__(self, api):
            self.api, self.pages = api, 0
        def __getattr__(self, name):
            return getattr(self.api, name)
        def ticket_page(self, event_id, **kwargs):
            self.pages += 1
            if point == "page" and self.pages == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if point == "page" and self.pages == kill_at - 1:
                time.sleep(0.4)  # past the batch's span: this page commits with the rest
            return self.api.ticket_page(event_id, **kwargs)

    store = TicketStore(make_engine("sqlite:///" + db))
    if point == "sweep":
        sweep = store.sweep
        def sweep_then_die(event_id, **kwargs):
            sweep(event_id, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        store.sweep = sweep_then_die
    api = VivenuClient(url, Secret(token), backoff=0.01, retries=8)
    Syncer(Dying(api), store, SyncConfig(page_size=page, reconcile_every=0),
           events=(event_id,), prefetch=0).run_once()
""")


def killed_reconcile(sim: SimServer, store: TicketStore, world: World, point: str,
                     kill_at: int = 0) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLED_RECONCILE, sim.url, TOKEN,
                           str(db_path(store)), world.event_ids[0], point, str(kill_at),
                           str(PAGE)], capture_output=True, timeout=120, env=os.environ)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def test_a_reconcile_killed_mid_listing_resumes_and_sweeps_exactly_the_missing(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    event_id = world.event_ids[0]
    syncer(api, store, world).run_once()
    gone = world.delete(GONE, event_id)
    killed_reconcile(sim, store, world, "page", kill_at=8)
    state = store.sync_state(event_id)
    assert state is not None and state.full_in_progress and state.full_skip
    # The pages committed before the kill kept their marks; the resumed run pages only
    # what follows, so without them it would sweep the tickets those pages listed.
    assert store.seen_marks(event_id) >= state.full_skip - PAGE
    [report] = syncer(api, store, world).run_once()
    assert report.resumed and report.swept == len(gone)
    assert store_docs(store) == server_docs(world.current_tickets(event_id))
    assert store.seen_marks(event_id) == 0


def test_a_reconcile_killed_between_its_sweep_and_its_close_is_finished_by_the_next_run(
        api: VivenuClient, store: TicketStore, world: World, sim: SimServer) -> None:
    event_id = world.event_ids[0]
    syncer(api, store, world).run_once()
    gone = world.delete(GONE, event_id)
    killed_reconcile(sim, store, world, "sweep")
    state = store.sync_state(event_id)
    assert state is not None and state.full_in_progress  # swept, not closed
    assert store.count(event_id) == TICKETS - len(gone)
    assert store.seen_marks(event_id) == TICKETS - len(gone)
    [report] = syncer(api, store, world).run_once()
    assert (report.resumed, report.swept, report.held, report.total) == \
        (True, 0, 0, TICKETS - len(gone))
    assert store.held_deletions() == {}  # the marks survived: nothing looked deleted
    after = store.sync_state(event_id)
    assert after is not None and not after.full_in_progress
    assert after.last_full_at is not None and after.last_full_at != state.last_full_at
    assert store_docs(store) == server_docs(world.current_tickets(event_id))
    assert store.seen_marks(event_id) == 0
