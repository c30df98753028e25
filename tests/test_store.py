"""The ticket store on real SQLite files: newer-wins upsert, lookups, sweep, state."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.databases import make_engine
from scanner.errors import StoreError
from scanner.store.tickets import TicketStore
from scanner.tickets import Ticket

OLD, NEW = "2030-01-01T10:00:00.000Z", "2030-01-01T11:00:00.000Z"


def ticket(i: int = 1, *, updated: str = OLD, event: str = "ev-1", **fields: object) -> Ticket:
    values: dict[str, object] = {"status": "VALID", "barcode": f"BARCODE{i:04d}", **fields}
    return Ticket(id=f"t{i}", event_id=event, ticket_type_id="tt",
                  ticket_name="GA", seller_id="s", created_at=OLD, updated_at=updated,
                  **values)  # type: ignore[arg-type]


@pytest.fixture(params=["upsert", "generic"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TicketStore:
    """The dialect upsert and the portable fallback must honour the same contract."""
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    yield TicketStore(engine, force_generic_upsert=request.param == "generic")
    engine.dispose()


def test_every_field_round_trips(store: TicketStore) -> None:
    full = ticket(name="Ada", price_category_id="pc", category_ref="cr", parent_event_id="pe",
                  price_category={"_id": "pc", "name": "Front"}, area="A", row="3", seat="7",
                  discount_id="d", discount="10%", entry=("e1", "e2"),
                  slot_start="2030-01-02T18:00:00.000Z")
    store.upsert([full])
    assert store.get("t1") == full


def test_upsert_is_idempotent(store: TicketStore) -> None:
    batch = [ticket(i) for i in range(5)]
    assert store.upsert(batch) == 5
    assert store.upsert(batch) == 0
    assert store.count() == 5


def test_newer_copy_overwrites(store: TicketStore) -> None:
    store.upsert([ticket(updated=OLD)])
    store.upsert([ticket(updated=NEW, status="INVALID")])
    assert store.get("t1") == ticket(updated=NEW, status="INVALID")


def test_older_copy_never_overwrites_newer(store: TicketStore) -> None:
    store.upsert([ticket(updated=NEW, status="INVALID")])
    assert store.upsert([ticket(updated=OLD)]) == 0
    assert store.get("t1") == ticket(updated=NEW, status="INVALID")


def test_older_copy_still_marks_seen(store: TicketStore) -> None:
    """A full sync that sees a stale copy must not sweep the ticket it knows exists."""
    store.upsert([ticket(updated=NEW, status="INVALID")])
    store.upsert([ticket(updated=OLD)], seen_by="ev-1")
    assert store.sweep("ev-1") == 0
    assert store.get("t1") == ticket(updated=NEW, status="INVALID")


def test_older_copy_in_the_same_batch_loses(store: TicketStore) -> None:
    store.upsert([ticket(updated=NEW, status="INVALID"), ticket(updated=OLD)])
    assert store.get("t1") == ticket(updated=NEW, status="INVALID")


@pytest.mark.parametrize("seen_by", [None, "ev-2"])
def test_newer_copy_moves_barcode_and_event(store: TicketStore, seen_by: str | None) -> None:
    """The indexed columns follow the merge rules too, though the upsert assigns them apart."""
    store.upsert([ticket(1), ticket(2, updated=NEW)])
    moved = ticket(1, updated=NEW, barcode="REISSUED", event="ev-2")
    store.upsert([moved, ticket(2, updated=OLD, barcode="STALE")], seen_by=seen_by)
    assert store.by_barcode("REISSUED") == [moved]
    assert store.by_barcode("BARCODE0001") == []
    assert store.counts_by_event() == {"ev-1": 1, "ev-2": 1}
    assert store.by_barcode("STALE") == [] and store.get("t2") == ticket(2, updated=NEW)


def test_each_key_moves_alone_in_a_page_of_new_tickets(store: TicketStore) -> None:
    """The keys' statement runs only for rows stored with other keys: one that changes its
    barcode alone, one its event alone, among tickets not stored yet and unchanged ones."""
    store.upsert([ticket(1), ticket(2), ticket(3)])
    page = [ticket(1, updated=NEW, barcode="REISSUED"), ticket(2, updated=NEW, event="ev-2"),
            ticket(3), *(ticket(i) for i in range(10, 20))]
    assert store.upsert(page) == 12
    assert store.by_barcode("REISSUED") == [page[0]] and store.by_barcode("BARCODE0001") == []
    assert store.get("t2") == page[1] and store.counts_by_event() == {"ev-1": 12, "ev-2": 1}


def test_older_or_equal_copy_keeps_barcode(store: TicketStore) -> None:
    store.upsert([ticket(1, updated=NEW)])
    store.upsert([ticket(1, updated=OLD, barcode="OLDER", event="ev-9")])
    store.upsert([ticket(1, updated=NEW, barcode="SAME-TIME")])
    assert store.get("t1") == ticket(1, updated=NEW)


def test_overwrite_moves_barcode_of_a_stale_copy(store: TicketStore) -> None:
    """The reconcile takes the server's copy whatever its ``updatedAt``."""
    store.upsert([ticket(1, updated=NEW)])
    store.upsert([ticket(1, updated=OLD, barcode="SERVER")], seen_by="ev-1", overwrite=True)
    assert store.get("t1") == ticket(1, updated=OLD, barcode="SERVER")


def test_overwrite_takes_a_copy_that_differs_at_the_same_updated_at(store: TicketStore) -> None:
    """The reconcile skips only rows equal to the server's copy, not every same-time one."""
    store.upsert([ticket(1, updated=NEW, seat="1")])
    assert store.upsert([ticket(1, updated=NEW, seat="2")], overwrite=True) == 1
    assert store.get("t1") == ticket(1, updated=NEW, seat="2")
    assert store.upsert([ticket(1, updated=NEW, seat="2")], overwrite=True) == 0


def test_a_delta_writes_only_the_pages_of_rows_it_changes(tmp_path: Path) -> None:
    """A status change must not rewrite the barcode and event indexes' pages: SQLite
    rewrites an index entry for every column a statement assigns, and on a big delta those
    pages were most of what the sync wrote to the disk the journal fsyncs on."""
    import sqlite3

    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        store = TicketStore(engine)
        store.upsert([ticket(i) for i in range(3000)])  # many pages in each index
        probe = sqlite3.connect(path)
        probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert store.upsert([ticket(7, updated=NEW, status="INVALID")]) == 1
        _busy, frames, _done = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        probe.close()
    finally:
        engine.dispose()
    assert frames == 1  # the table's leaf holding the row; no index leaf, no interior page


def test_delta_without_marks_keeps_mark(store: TicketStore) -> None:
    store.upsert([ticket()], seen_by="ev-1")
    store.upsert([ticket(updated=NEW)])
    assert store.sweep("ev-1") == 0


def test_sweep_drops_only_unseen_tickets_of_that_event(store: TicketStore) -> None:
    store.upsert([ticket(1), ticket(2), ticket(3, event="ev-2")])
    store.upsert([ticket(1)], seen_by="ev-1")
    assert store.unseen("ev-1") == 1
    assert store.sweep("ev-1") == 1
    assert sorted(t.id for t in store.iter_tickets()) == ["t1", "t3"]


def test_a_mark_of_another_events_listing_does_not_keep_a_ticket(store: TicketStore) -> None:
    store.upsert([ticket(1), ticket(2)])
    store.upsert([ticket(1), ticket(2)], seen_by="ev-2")
    assert store.sweep("ev-1") == 2 and store.count() == 0


def test_begin_full_starts_without_marks_and_finish_full_clears_them(
        store: TicketStore) -> None:
    store.upsert([ticket(1)], seen_by="ev-1")  # a closed run's leftover
    store.begin_full("ev-1", NEW)
    assert store.seen_marks("ev-1") == 0
    store.save_page("ev-1", [ticket(1)], mark=True, skip=1, anchor=("t1",))
    assert store.seen_marks("ev-1") == 1
    store.finish_full("ev-1", delta_until=NEW, server_total=1)
    assert store.seen_marks("ev-1") == 0 and store.count() == 1


def test_by_barcode_finds_one_ticket_per_event(store: TicketStore) -> None:
    store.upsert([ticket(1), ticket(2, barcode="BARCODE0001", event="ev-2")])
    assert sorted(t.id for t in store.by_barcode("BARCODE0001")) == ["t1", "t2"]


def test_by_barcode_unknown_is_empty(store: TicketStore) -> None:
    assert store.by_barcode("NOPE") == []


def test_by_barcode_sees_later_writes(store: TicketStore) -> None:
    """The held lookup connection must not pin an old snapshot."""
    assert store.by_barcode("BARCODE0001") == []
    store.upsert([ticket(1)])
    assert [t.id for t in store.by_barcode("BARCODE0001")] == ["t1"]


def test_counts(store: TicketStore) -> None:
    store.upsert([ticket(1), ticket(2), ticket(3, event="ev-2")])
    assert (store.count(), store.count("ev-1")) == (3, 2)
    assert store.counts_by_event() == {"ev-1": 2, "ev-2": 1}


def test_iter_tickets_filters_by_event_in_id_order(store: TicketStore) -> None:
    store.upsert([ticket(3), ticket(1), ticket(2, event="ev-2")])
    assert [t.id for t in store.iter_tickets("ev-1")] == ["t1", "t3"]


def test_events_are_replaced_wholesale(store: TicketStore) -> None:
    store.save_events([{"_id": "a", "name": "A"}, {"_id": "b", "name": "B"}])
    store.save_events([{"_id": "b", "name": "B2"}])
    assert store.events() == [{"_id": "b", "name": "B2"}]


def test_settings_round_trip(store: TicketStore) -> None:
    assert store.settings() is None
    me = {"deviceSettings": {"scanConfig": {"events": ["a"]}}, "name": "gate 1"}
    store.save_settings(me)
    assert store.settings() == me


def test_clearing_one_events_marks_keeps_anothers(store: TicketStore) -> None:
    store.upsert([ticket(1), ticket(2)], seen_by="ev-1")
    store.upsert([ticket(3, event="ev-2")], seen_by="ev-2")
    store.begin_full("ev-1", NEW)
    assert (store.seen_marks("ev-1"), store.seen_marks("ev-2")) == (0, 1)
    store.upsert([ticket(1)], seen_by="ev-1")
    store.begin_full("ev-2", NEW)
    assert (store.seen_marks("ev-1"), store.seen_marks("ev-2")) == (1, 0)


def test_the_only_events_marks_go_at_once_and_their_pages_are_not_rewritten(
        tmp_path: Path) -> None:
    """One event's marks are dropped by one DELETE without WHERE, freed pages left as they
    are: a page-by-page delete (zeroed by Debian's secure_delete) wrote every page again."""
    import sqlite3

    from scanner.store import seen

    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        store = TicketStore(engine)
        ids = [f"ticket-{i:020d}" for i in range(20_000)]
        with engine.begin() as conn:
            seen.mark(conn, "ev-1", ids)
        probe = sqlite3.connect(path)
        probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with engine.connect() as conn:
            secure = conn.exec_driver_sql("PRAGMA secure_delete").scalar_one()
        store.finish_full("ev-1", delta_until=NEW, server_total=0, unseen=0)
        assert store.seen_marks("ev-1") == 0
        written = path.with_name("gate.db-wal").stat().st_size // 4096
        freed = probe.execute("PRAGMA freelist_count").fetchone()[0]
        assert freed > 100 and written < 10, (freed, written)
        with engine.connect() as conn:  # the pool's connection as it was
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == secure
        probe.close()
    finally:
        engine.dispose()


def test_clearing_marks_takes_the_write_lock_before_it_looks_whose_they_are(
        tmp_path: Path) -> None:
    """No other sync can add its marks between the check and the DELETE without WHERE."""
    import sqlite3

    from scanner.store import seen

    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        TicketStore(engine)
        other = sqlite3.connect(path, timeout=0)
        with engine.begin() as conn:
            seen.mark(conn, "ev-1", ["t1"])
        with engine.begin() as conn:
            assert seen.clear_if_alone(conn, "ev-1")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("INSERT INTO full_seen VALUES ('ev-2', 't2')")
        other.close()
    finally:
        engine.dispose()


def test_page_and_cursor_commit_together(store: TicketStore) -> None:
    store.begin_full("ev-1", NEW)
    store.save_page("ev-1", [ticket(1)], mark=True, skip=1, anchor=("t1",), total=9)
    state = store.sync_state("ev-1")
    assert (state.generation, state.full_skip, state.full_anchor, state.full_total,
            state.full_until) == (1, 1, ("t1",), 9, NEW)


def test_failed_page_write_is_one_line_and_keeps_previous_cursor(store: TicketStore) -> None:
    store.begin_full("ev-1", NEW)
    store.save_page("ev-1", [ticket(1)], mark=True, skip=1, anchor=("t1",))
    broken = ticket(2, barcode=None)  # NOT NULL violation
    with pytest.raises(StoreError, match=r"^cannot write the ticket store [^\n]+: [^\n]*$"):
        store.save_page("ev-1", [ticket(3), broken], mark=True, skip=2, anchor=("t2",))
    assert (store.sync_state("ev-1").full_skip, store.count()) == (1, 1)
    assert store.seen_marks("ev-1") == 1  # the failed page's marks went with it


def test_finish_full_sweeps_and_clears_cursor(store: TicketStore) -> None:
    store.upsert([ticket(1), ticket(2)])
    store.begin_full("ev-1", NEW)
    store.save_page("ev-1", [ticket(1)], mark=True, skip=1, anchor=("t1",))
    swept = store.finish_full("ev-1", delta_until=NEW, server_total=1,
                              at="2030-01-01T12:00:00.000Z")
    state = store.sync_states()["ev-1"]
    assert swept == 1
    assert state == {"last_sync": "2030-01-01T12:00:00.000Z",
                     "last_full": "2030-01-01T12:00:00.000Z", "server_total": 1,
                     "delta_until": NEW, "generation": 1, "full_in_progress": False,
                     "full_skip": None, "full_total": None, "held_deletions": None}


def test_finish_full_told_nothing_is_unseen_skips_the_sweeps_walk(store: TicketStore) -> None:
    from sqlalchemy import event

    walks: list[str] = []

    def seen(conn: object, cursor: object, sql: str, *args: object) -> None:
        if "full_seen" in sql and "ORDER BY tickets.id" in sql:
            walks.append(sql)

    event.listen(store.engine, "before_cursor_execute", seen)
    for unseen, walked in ((0, False), (None, True)):
        walks.clear()
        store.upsert([ticket(1), ticket(2)])
        store.begin_full("ev-1", NEW)
        store.save_page("ev-1", [ticket(1), ticket(2)], mark=True, skip=2, anchor=("t2",))
        assert store.finish_full("ev-1", delta_until=NEW, server_total=2,
                                 unseen=unseen) == 0
        assert bool(walks) is walked and store.count("ev-1") == 2


def test_the_store_commits_without_fsync_and_the_journal_with_it(tmp_path: Path) -> None:
    """The durability split: the store is rebuilt by a sync (synchronous=NORMAL is 1), the
    journal cannot be (FULL is 2)."""
    from scanner.config import journal_url_beside
    from scanner.databases import make_journal_engine

    url = f"sqlite:///{tmp_path / 'gate.db'}"
    store, journal = make_engine(url), make_journal_engine(journal_url_beside(url))
    try:
        levels = [engine.raw_connection().driver_connection.execute(  # type: ignore[union-attr]
            "PRAGMA synchronous").fetchone() for engine in (store, journal)]
    finally:
        store.dispose()
        journal.dispose()
    assert levels == [(1,), (2,)]
