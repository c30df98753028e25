"""The gate on a real PostgreSQL server: "any SQLAlchemy URL works in place of the SQLite path".

The store and journal contracts of test_store.py and test_journal.py run here again,
unchanged, over fixtures built on PostgreSQL; the round trips (check, upload, sync) go
through the composition root ``Gate`` with ``GATE_DB`` set to the server's URL, as an
operator would configure it. Skips, with the reason, where no PostgreSQL server is
installed (see kits.pg); ``./run test`` installs one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kits.gate import build_gate
from kits.journal import EVENT, api_config, make_decision, make_ticket, open_journal
from kits.pg import PgServer, pg_server_fixture, pg_url_fixture  # noqa: F401
from kits.sim import SIM_TOKEN
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from test_journal import (  # noqa: F401  (the journal contract, collected again here)
    put,
    test_a_reused_scan_id_is_refused,
    test_a_ticket_scan_goes_under_the_tickets_event,
    test_denied_scans_never_change_presence,
    test_entries_since_skips_older_scans,
    test_entries_stream_past_one_chunk,
    test_history_holds_granted_scans_oldest_first,
    test_history_of_one_ticket_ignores_the_others,
    test_malformed_read_is_kept_local,
    test_mark_sent_moves_only_pending_scans,
    test_pending_gives_one_events_oldest_scans_first,
    test_presence_counts_tickets_whose_last_granted_scan_is_in,
    test_requeue_rejected_puts_scans_back_in_the_queue,
    test_server_offset_falls_back_to_the_saved_offset_when_offline,
    test_server_offset_saves_a_changed_live_offset,
    test_short_read_is_kept_local_and_counted,
    test_stats_report_queue_rejected_local_and_last_upload,
    test_unknown_barcode_is_queued_under_the_given_event,
    test_unknown_barcode_without_an_event_is_kept_local_with_the_reason,
)
from test_migrations import _schema
from test_store import (  # noqa: F401  (the store contract, collected again here)
    test_a_mark_of_another_events_listing_does_not_keep_a_ticket,
    test_begin_full_starts_without_marks_and_finish_full_clears_them,
    test_by_barcode_finds_one_ticket_per_event,
    test_by_barcode_sees_later_writes,
    test_by_barcode_unknown_is_empty,
    test_clearing_one_events_marks_keeps_anothers,
    test_counts,
    test_delta_without_marks_keeps_mark,
    test_events_are_replaced_wholesale,
    test_every_field_round_trips,
    test_failed_page_write_is_one_line_and_keeps_previous_cursor,
    test_finish_full_sweeps_and_clears_cursor,
    test_iter_tickets_filters_by_event_in_id_order,
    test_newer_copy_overwrites,
    test_older_copy_in_the_same_batch_loses,
    test_older_copy_never_overwrites_newer,
    test_older_copy_still_marks_seen,
    test_overwrite_takes_a_copy_that_differs_at_the_same_updated_at,
    test_page_and_cursor_commit_together,
    test_settings_round_trip,
    test_sweep_drops_only_unseen_tickets_of_that_event,
    test_upsert_is_idempotent,
)

from scanner.app import Gate
from scanner.cli.main import main
from scanner.databases import make_journal_engine
from scanner.decide.model import Direction, Reason
from scanner.errors import AlreadyAnswered
from scanner.journal import Journal
from scanner.journal.migrations import JOURNAL
from scanner.journal.schema import JOURNAL_SCHEMA_VERSION, journal_meta, journal_metadata
from scanner.journal.schema import journal as journal_table
from scanner.mesh.peer_journal import MeshStore
from scanner.sim import SimServer, World
from scanner.store.tickets import TicketStore
from scanner.supervise import Desk, Holds
from scanner.supervise.desk import Acting
from scanner.tickets import Ticket
from scanner.venue.applied import Outcome, VenueStore
from scanner.venue.command import Kind, Scope, new_command
from scanner.venue.signing import Signer, keygen
from scanner.zones.escrow import Ledger

IN, OUT = Direction.IN, Direction.OUT

# The throwaway server takes seconds to start: every test here runs on one worker, so one
# server serves them all.
pytestmark = pytest.mark.xdist_group("postgres")


def pg_gate(tmp_path: Path, url: str, sim: SimServer | None = None, **overrides: Any) -> Gate:
    """The kit's gate with its store and journal on PostgreSQL, on ``sim`` if given."""
    if sim is not None:
        overrides["api"] = api_config(sim)
    return build_gate(tmp_path, db=url, **overrides)


@pytest.fixture
def gate(tmp_path: Path, pg_url: str) -> Iterator[Gate]:
    with pg_gate(tmp_path, pg_url) as gate:
        yield gate


@pytest.fixture
def journal(gate: Gate) -> Journal:
    return gate.journal


@pytest.fixture(params=["upsert", "generic"])
def store(request: pytest.FixtureRequest, gate: Gate) -> Iterator[TicketStore]:
    """The ON CONFLICT upsert and the portable fallback, both on PostgreSQL."""
    if request.param == "upsert":
        yield gate.store
        return
    generic = TicketStore(gate.engine, force_generic_upsert=True)
    yield generic
    generic.close()


def other_connection(url: str) -> Any:
    """An engine of its own: what it reads, another process would read."""
    return create_engine(url, poolclass=NullPool)


def backends(pg_server: PgServer, url: str, sql: str) -> None:
    """Run ``sql`` (about pg_stat_activity) as superuser over this test's database."""
    database = make_url(url).database
    pg_server.admin(sql.replace(":db", f"'{database}'"))


# -- the journal, what the imported contract cannot say ----------------------------------

def test_the_engine_really_is_postgresql(gate: Gate) -> None:
    """Guards every test here: a silently ignored GATE_DB would test SQLite again."""
    assert gate.engine.dialect.name == "postgresql"


def test_a_recorded_scan_is_committed_for_another_connection(journal: Journal,
                                                              pg_url: str) -> None:
    scan_id = put(journal, make_decision(make_ticket()))
    other = other_connection(pg_url)
    with other.connect() as conn:
        rows = conn.execute(text("SELECT scan_id, result, offline FROM journal")).all()
    other.dispose()
    assert [tuple(r) for r in rows] == [(scan_id, "OK", True)]


def test_the_clock_offset_is_kept_across_gates(tmp_path: Path, pg_url: str) -> None:
    with pg_gate(tmp_path, pg_url) as first:
        first.journal.save_clock_offset(-3.25)
        first.journal.save_clock_offset(-1.5)  # an existing key is updated
    with pg_gate(tmp_path, pg_url) as second:
        assert second.journal.saved_clock_offset() == -1.5


def test_held_connections_are_idle_between_scans(gate: Gate, pg_server: PgServer,
                                                 pg_url: str) -> None:
    """No connection stays "idle in transaction" after a check: that would pin an old
    snapshot (stale lookups) and hold locks against the sync writer."""
    gate.store.upsert([make_ticket(1)])
    assert gate.gatekeeper.check(make_ticket(1).barcode, IN).decision.granted
    other = other_connection(pg_url)
    with other.connect() as conn:
        states = conn.execute(text(
            "SELECT state FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalars().all()
    other.dispose()
    assert states and set(states) == {"idle"}


def test_a_server_restart_costs_no_scan(gate: Gate, pg_server: PgServer, pg_url: str) -> None:
    """The held lookup and journal connections die with the server's backends; the next
    check replaces them (a read is retried once on a fresh connection) and is journaled."""
    gate.store.upsert([make_ticket(1), make_ticket(2)])
    gate.gatekeeper.check(make_ticket(1).barcode, IN)
    backends(pg_server, pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = :db")
    result = gate.gatekeeper.check(make_ticket(2).barcode, IN)
    assert result.decision.granted
    assert [e["scan_id"] for e in gate.journal.entries()][-1] == result.scan_id


# -- presence: the portable query against SQLite's own answer ----------------------------

# The query the journal used before it ran on PostgreSQL: SQLite's bare columns beside
# MAX(seq). The portable query must agree with it on every scan sequence.
SQLITE_BARE_COLUMN_INSIDE = (
    "SELECT event_id, COUNT(*) FROM ("
    " SELECT event_id, direction, MAX(seq) FROM journal"
    " WHERE result = 'OK' AND ticket_id IS NOT NULL GROUP BY ticket_id"
    ") WHERE direction = 'IN' GROUP BY event_id")

# (ticket number, its event, direction, granted)
scan_steps = st.lists(st.tuples(st.integers(0, 5), st.sampled_from([EVENT, "ev-other"]),
                                st.sampled_from([IN, OUT]), st.booleans()), max_size=25)


@pytest.fixture(scope="module")
def twin_journals(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[Journal, Journal, Path]]:
    """One journal on SQLite and one on PostgreSQL, emptied by the test between examples."""
    name = "gate_presence"
    pg_server.admin(f'CREATE DATABASE "{name}"')
    path = tmp_path_factory.mktemp("presence") / "gate.db"
    pg_engine = make_journal_engine(pg_server.url(name))
    try:
        with open_journal(path) as lite:
            pg = Journal(pg_engine, "g1")
            yield lite, pg, path
            pg.close()
    finally:
        pg_engine.dispose()
        pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=scan_steps)
def test_presence_is_the_same_on_sqlite_and_postgresql(
        twin_journals: tuple[Journal, Journal, Path], steps: list[Any]) -> None:
    lite, pg, path = twin_journals
    for journal in (lite, pg):
        with journal.engine.begin() as conn:
            conn.execute(text("DELETE FROM journal"))
        for n, event, direction, granted in steps:
            ticket = make_ticket(n % 3, event=event) if n < 3 else make_ticket(n)
            put(journal, make_decision(ticket, direction, granted=granted,
                                       reason=None if granted else Reason.ALREADY_INSIDE))
    with sqlite3.connect(path) as raw:
        bare_columns = dict(raw.execute(SQLITE_BARE_COLUMN_INSIDE).fetchall())
    assert pg.inside_counts() == lite.inside_counts() == bare_columns


# -- round trips through the composition root, against the simulator ---------------------

@pytest.fixture
def sim_gate(tmp_path: Path, pg_url: str, sim_server: SimServer,
             sim_world: World) -> Iterator[Gate]:
    """A gate on PostgreSQL serving the simulator's first event, fully synced."""
    event = sim_world.event_ids[0]
    with pg_gate(tmp_path, pg_url, sim_server, events=(event,)) as gate:
        gate.syncer.run_once()
        yield gate


def test_check_grants_denies_and_counts_presence(sim_gate: Gate, sim_world: World) -> None:
    event = sim_world.event_ids[0]
    doc = next(d for d in sim_world.current_tickets(event) if d["status"] == "VALID")
    first = sim_gate.gatekeeper.check(doc["barcode"], IN)
    second = sim_gate.gatekeeper.check(doc["barcode"], IN)
    assert (first.decision.reason, first.decision.offline) == (Reason.GRANTED, True)
    assert second.decision.reason is Reason.ALREADY_INSIDE
    assert sim_gate.journal.inside_counts() == {event: 1}
    assert [s.direction for s in sim_gate.journal.history(doc["_id"]).scans] == [IN]


def test_outbox_drains_every_scan_to_the_server(sim_gate: Gate, sim_world: World) -> None:
    event = sim_world.event_ids[0]
    docs = [d for d in sim_world.current_tickets(event) if d["status"] == "VALID"][:7]
    scan_ids = [sim_gate.gatekeeper.check(d["barcode"], IN).scan_id for d in docs]
    report = sim_gate.outbox.drain_once()
    stats = sim_gate.journal.stats()
    assert (report.sent, report.errors) == (len(scan_ids), [])
    assert sorted(s["barcode"] for s in sim_world.scans) == sorted(d["barcode"] for d in docs)
    assert (stats["queue_depth"], stats["last_upload"] is not None) == (0, True)
    assert sim_gate.outbox.drain_once().sent == 0


def test_full_and_delta_sync_hold_exactly_the_servers_tickets(
        tmp_path: Path, pg_url: str, sim_server: SimServer, sim_world: World) -> None:
    with pg_gate(tmp_path, pg_url, sim_server, events=tuple(sim_world.event_ids)) as gate:
        gate.syncer.run_once()
        assert stored(gate) == served(sim_world)
        sim_world.cancel(5)
        sim_world.change(5)
        sim_world.sell(sim_world.event_ids[1], 4)
        gate.syncer.run_once()  # a delta: the full sync finished
        assert stored(gate) == served(sim_world)
        assert {e: s["delta_until"] is not None
                for e, s in gate.store.sync_states().items()} == dict.fromkeys(
                    sim_world.event_ids, True)


def stored(gate: Gate) -> dict[str, dict[str, Any]]:
    return {t.id: t.to_api() for t in gate.store.iter_tickets()}


def served(world: World) -> dict[str, dict[str, Any]]:
    return {d["_id"]: Ticket.from_api(d).to_api()
            for event in world.event_ids for d in world.current_tickets(event)}


def test_cli_check_upload_and_status_run_on_postgresql(
        pg_url: str, sim_server: SimServer, sim_world: World, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The three commands that broke with GATE_DB=postgresql://..., through ``main``."""
    event = sim_world.event_ids[0]
    doc = next(d for d in sim_world.current_tickets(event) if d["status"] == "VALID")
    for name in ("GATE_CONFIG", "GATE_API_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = {"GATE_DB": pg_url, "GATE_ID": "g1", "GATE_EVENTS": event,
           "GATE_API_URL": sim_server.url, "GATE_API_TOKEN": SIM_TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["check", doc["barcode"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "GRANTED"
    assert main(["upload", "--once", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 1
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["events"][event]["inside"], status["queue"]["depth"]) == (1, 0)


# -- the journal's later tables: venue commands, who and why, zone ledgers, migrations -----

def test_a_venue_command_is_applied_once_and_read_back(gate: Gate, tmp_path: Path) -> None:
    signer = Signer(keygen(tmp_path)[0])
    store = VenueStore(gate.journal_engine)
    stop = new_command(Kind.STOP_ENTRY, Scope.ZONE, "north", issuer="ab12", seq=2,
                       issued_at="2030-01-01T00:00:00.000Z", reason="crowd at the stand")
    older = new_command(Kind.RESUME, Scope.ZONE, "north", issuer="ab12", seq=1,
                        issued_at="2030-01-01T00:00:00.000Z")
    envelope = signer.seal(stop)
    assert store.apply(stop, envelope, "2030-01-01T00:00:01.000Z") is Outcome.APPLIED
    assert store.apply(stop, envelope, "2030-01-01T00:00:02.000Z") is Outcome.DUPLICATE
    assert store.apply(older, signer.seal(older), "2030-01-01T00:00:03.000Z") \
        is Outcome.SUPERSEDED
    assert store.current() == [(stop, envelope)]
    [row] = store.history()
    assert (row["kind"], row["scope"], row["target"], row["reason"]) == \
        ("stop_entry", "zone", "north", "crowd at the stand")
    store.close()


def test_an_override_is_journaled_with_who_and_why_and_answers_its_denial_once(
        gate: Gate) -> None:
    gate.store.upsert([make_ticket(1)])
    code = make_ticket(1).barcode
    gate.gatekeeper.check(code, IN)
    denied = gate.gatekeeper.check(code, IN)
    assert denied.decision.reason is Reason.ALREADY_INSIDE
    desk = Desk(gate.journal, gate.gatekeeper, lambda *_args: True, Holds(5.0))
    boss = Acting("supervisor", "s-7f3a")
    result = desk.override(denied.scan_id, boss, "WRONG_READ", "scanned twice by mistake")
    last = list(gate.journal.entries())[-1]
    assert (last["scan_id"], last["reason"], last["result"]) == \
        (result.scan_id, "OVERRIDDEN", "OK")
    assert (last["role"], last["session"], last["why"], last["note"], last["answers"]) == \
        ("supervisor", "s-7f3a", "WRONG_READ", "scanned twice by mistake", denied.scan_id)
    with pytest.raises(AlreadyAnswered):
        desk.override(denied.scan_id, boss, "WRONG_READ")
    assert [e["reason"] for e in gate.journal.entries()] == \
        ["GRANTED", "ALREADY_INSIDE", "OVERRIDDEN"]


def test_the_zone_ledgers_are_saved_and_loaded(gate: Gate) -> None:
    store = MeshStore(gate.journal_engine, "g1")
    own = Ledger("g1", "lounge", "g1", 3, {"lounge": 40}, {"lounge": {"g2": 12}},
                 {"lounge": {"g1": 28, "g2": 12}})
    peer = Ledger("g2", "lounge", "g1", 7)
    store.save_ledgers([own, peer])
    store.save_ledgers([own.bumped(minted={"lounge": 41}), peer])  # the key is updated
    assert store.ledgers() == [own.bumped(minted={"lounge": 41}), peer]
    store.close()


def test_a_journal_of_schema_version_1_is_migrated_and_keeps_its_scans(
        pg_server: PgServer, pg_url: str) -> None:
    """What the first release created on PostgreSQL (the journal and its keys), opened by
    this one: every later table appears, equal to a fresh journal's, and the scans stay."""
    old = create_engine(pg_url, poolclass=NullPool)
    with old.begin() as conn:
        journal_metadata.create_all(conn, tables=[journal_table, journal_meta])
        JOURNAL.set_version(conn, 1)
    old.dispose()
    engine = make_journal_engine(pg_url)
    assert JOURNAL.version_of(engine) == JOURNAL_SCHEMA_VERSION
    fresh_name = f"{make_url(pg_url).database}_fresh"
    pg_server.admin(f'CREATE DATABASE "{fresh_name}"')
    fresh = make_journal_engine(pg_server.url(fresh_name))
    try:
        assert _schema(engine) == _schema(fresh)
    finally:
        fresh.dispose()
        pg_server.admin(f'DROP DATABASE IF EXISTS "{fresh_name}" WITH (FORCE)')
    migrated = Journal(engine, "g1")
    scan_id = put(migrated, make_decision(make_ticket()))
    assert [e["scan_id"] for e in migrated.entries()] == [scan_id]
    migrated.close()
    engine.dispose()


class Racers:
    """Two long-lived threads (a store keeps a connection per thread, as a kiosk's workers
    do) that run two calls at once: what each returned or raised."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(2)
        self._start = threading.Barrier(2)

    def race(self, *calls: Callable[[], Any]) -> list[Any]:
        def run(call: Callable[[], Any]) -> Any:
            self._start.wait()
            try:
                return call()
            except Exception as exc:  # the outcome under test
                return exc

        return [f.result() for f in [self._pool.submit(run, c) for c in calls]]

    def close(self) -> None:
        self._pool.shutdown()


@pytest.fixture
def racers() -> Iterator[Racers]:
    r = Racers()
    yield r
    r.close()


RACES = 40  # rounds of two writers at once: enough to meet in the same instant


def test_two_processes_applying_one_venue_command_at_once_apply_it_once(
        pg_url: str, tmp_path: Path, racers: Racers) -> None:
    """Each its own engine, as the daemon and the kiosk are: one applies, the other is
    told it is held already (never a database error)."""
    signer = Signer(keygen(tmp_path)[0])
    engines = [make_journal_engine(pg_url) for _ in range(2)]
    stores = [VenueStore(engine) for engine in engines]
    try:
        for seq in range(1, RACES + 1):
            command = new_command(Kind.STOP_ENTRY, Scope.VENUE, "", issuer="ab12", seq=seq,
                                  issued_at="2030-01-01T00:00:00.000Z")
            envelope = signer.seal(command)
            outcomes = racers.race(*(partial(s.apply, command, envelope, "2030-01-01T00:00:01Z")
                              for s in stores))
            assert sorted(map(str, outcomes)) == sorted(
                [str(Outcome.APPLIED), str(Outcome.DUPLICATE)]), outcomes
        assert len(stores[0].history(limit=RACES + 5)) == RACES
    finally:
        for store, engine in zip(stores, engines, strict=True):
            store.close()
            engine.dispose()


def test_two_supervisors_overriding_one_denial_at_once_admit_it_once(
        gate: Gate, racers: Racers) -> None:
    """One override is journaled; the other is told the denial was answered already."""
    gate.store.upsert([make_ticket(n) for n in range(1, RACES + 1)])
    desk = Desk(gate.journal, gate.gatekeeper, lambda *_args: True, Holds(5.0))
    boss = Acting("supervisor")
    for n in range(1, RACES + 1):
        gate.gatekeeper.check(make_ticket(n).barcode, IN)
        denied = gate.gatekeeper.check(make_ticket(n).barcode, IN).scan_id
        outcomes = racers.race(*[partial(desk.override, denied, boss, "OTHER")] * 2)
        assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyAnswered",
                                                             "CheckResult"], outcomes
    assert [e["reason"] for e in gate.journal.entries()].count("OVERRIDDEN") == RACES


def test_two_processes_migrating_one_old_journal_at_once_both_open_it(
        pg_server: PgServer, racers: Racers) -> None:
    """The daemon and the upload service may start together after an upgrade: the one that
    waits finds the steps the other ran, never a step run twice or half."""
    for round_no in range(4):
        name = f"gate_migrate_{round_no}"
        pg_server.admin(f'CREATE DATABASE "{name}"')
        try:
            url = pg_server.url(name)
            old = create_engine(url, poolclass=NullPool)
            with old.begin() as conn:
                journal_metadata.create_all(conn, tables=[journal_table, journal_meta])
                JOURNAL.set_version(conn, 1)
            old.dispose()
            opened = racers.race(*[partial(make_journal_engine, url)] * 2)
            faults = [o for o in opened if isinstance(o, Exception)]
            for engine in opened:
                if not isinstance(engine, Exception):
                    assert JOURNAL.version_of(engine) == JOURNAL_SCHEMA_VERSION
                    engine.dispose()
            assert faults == []
        finally:
            pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
