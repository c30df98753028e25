"""Pages written several to a transaction (``scanner.store.batch``) on a real SQLite file:
what another connection sees is always whole pages with the cursor of the last of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.databases import make_engine
from scanner.errors import StoreError
from scanner.store.batch import (
    BULK,
    BULK_CHECKPOINT_PAGES,
    BULK_COMMIT_EVERY_S,
    SLICE_CHECKPOINT_PAGES,
    SLICE_ROWS,
    SLICED,
    WHOLE,
    WRITER_CACHE_KIB,
    PageBatch,
)
from scanner.store.tickets import TicketStore
from scanner.store.upsert import data_row
from tests.test_store import NEW, ticket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "gate.db"


@pytest.fixture
def store(db: Path) -> Iterator[TicketStore]:
    engine = make_engine(f"sqlite:///{db}")
    yield TicketStore(engine)
    engine.dispose()


def batch(store: TicketStore, clock: Clock, every: float = 1.0, *,
          in_service: bool = False, new_event: bool = False) -> PageBatch:
    return PageBatch(store.engine, store._upserter, "gate.db", commit_every=every,
                     in_service=in_service, new_event=new_event, clock=clock)


def committed(db: Path) -> tuple[int, int | None]:
    """Tickets and cursor as another process sees them; every page's seen marks are
    committed with it (each page here marks its two tickets)."""
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
        marks = conn.execute("SELECT count(*) FROM full_seen").fetchone()[0]
        row = conn.execute("SELECT full_skip FROM sync_state").fetchone()
    assert marks == count
    return count, row[0] if row else None


def page(store: PageBatch, first: int) -> None:
    store.save_page("ev-1", [ticket(first), ticket(first + 1)], mark=True,
                    skip=first + 1, anchor=(f"t{first + 1}",), total=10)


def test_pages_within_the_span_commit_together_with_the_last_cursor(
        store: TicketStore, db: Path) -> None:
    store.begin_full("ev-1", NEW)
    clock = Clock()
    with batch(store, clock) as pages:
        page(pages, 1)
        clock.now = 0.5
        page(pages, 3)
        assert committed(db) == (0, 0)  # begin_full's cursor: nothing of the batch yet
    assert committed(db) == (4, 4)


def test_a_page_past_the_span_commits(store: TicketStore, db: Path) -> None:
    store.begin_full("ev-1", NEW)
    clock = Clock()
    with batch(store, clock) as pages:
        page(pages, 1)
        clock.now = 1.0
        page(pages, 3)
        assert committed(db) == (4, 4)
        page(pages, 5)  # a new transaction opens at 1.0
        assert committed(db) == (4, 4)


def test_a_fault_between_pages_keeps_the_pages_written(store: TicketStore, db: Path) -> None:
    store.begin_full("ev-1", NEW)
    with pytest.raises(ConnectionError), batch(store, Clock()) as pages:
        page(pages, 1)
        raise ConnectionError("the next page never came")
    assert committed(db) == (2, 2)


def test_a_fault_writing_a_page_rolls_back_the_open_transaction(
        store: TicketStore, db: Path) -> None:
    store.begin_full("ev-1", NEW)
    clock = Clock()
    with pytest.raises(StoreError, match=r"^cannot write the ticket store gate.db: "), \
            batch(store, clock) as pages:
        page(pages, 1)
        clock.now = 1.0
        page(pages, 3)  # committed
        page(pages, 5)
        pages.save_page("ev-1", [ticket(7, barcode=None)], mark=True,
                        skip=7, anchor=("t7",))  # NOT NULL violation
    assert committed(db) == (4, 4)


def test_commit_lets_another_writer_in_at_once(store: TicketStore, db: Path) -> None:
    store.begin_full("ev-1", NEW)
    with batch(store, Clock()) as pages:
        page(pages, 1)
        pages.commit()
        with sqlite3.connect(db, timeout=0) as other:  # no wait: the lock must be free
            other.execute("UPDATE sync_state SET server_total = 1")
        page(pages, 3)
    assert committed(db) == (4, 4)


def test_a_batch_writes_with_a_large_cache_and_leaves_the_pool_its_usual_one(
        store: TicketStore) -> None:
    def cache_size(conn: Any) -> int:
        return int(conn.connection.driver_connection.execute("PRAGMA cache_size").fetchone()[0])

    with store.engine.connect() as conn:
        usual = cache_size(conn)
    store.begin_full("ev-1", NEW)
    with batch(store, Clock()) as pages:
        page(pages, 1)
        assert pages._conn is not None and cache_size(pages._conn) == -WRITER_CACHE_KIB
    with store.engine.connect() as conn:  # the pool's one connection, given back
        assert cache_size(conn) == usual != -WRITER_CACHE_KIB


def test_a_store_in_service_commits_a_page_in_slices_and_its_cursor_with_the_last(
        store: TicketStore, db: Path) -> None:
    store.begin_full("ev-1", NEW)
    rows = [ticket(n) for n in range(1, 3 * SLICE_ROWS)]
    rows.insert(2 * SLICE_ROWS + 5, ticket(0, barcode=None))  # NOT NULL: the third slice fails
    with pytest.raises(StoreError), batch(store, Clock(), every=60.0,
                                          in_service=True) as pages:
        pages.save_page("ev-1", [ticket(n) for n in range(1000, 1010)],
                        mark=True, skip=10, anchor=("t1009",), total=400)
        assert committed(db) == (10, 10)  # a whole page in service: committed at once
        pages.save_page("ev-1", rows, mark=True, skip=400, anchor=("x",))
    # Two slices of the failed page stayed (the upsert writes them again on resume); the
    # cursor is still the last whole page's.
    assert committed(db) == (10 + 2 * SLICE_ROWS, 10)


@pytest.mark.slow
def test_a_store_in_service_checkpoints_every_slice_so_its_wal_stays_small(
        store: TicketStore, db: Path) -> None:
    wal = db.with_name(db.name + "-wal")

    def wal_pages_after(first: int, in_service: bool) -> int:
        store.begin_full("ev-1", NEW)
        with batch(store, Clock(), every=60.0, in_service=in_service) as pages:
            for start in range(first, first + 3000, 1000):
                pages.save_page("ev-1", [ticket(n, name="n" * 300)
                                         for n in range(start, start + 1000)],
                                mark=True, skip=start, anchor=(f"t{start}",))
        return wal.stat().st_size // 4096

    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    in_service = wal_pages_after(0, True)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    first_sync = wal_pages_after(10_000, False)
    # 3,000 rows of ~400 bytes are ~300 pages: one transaction holds all of them in the
    # WAL; slices restart it after each checkpoint.
    assert first_sync > 250
    assert in_service < 3 * SLICE_CHECKPOINT_PAGES


def test_a_new_events_pages_are_written_whole_in_long_transactions(
        store: TicketStore, db: Path) -> None:
    """A new event's first full sync beside served ones: not sliced, and its transactions
    last at least ``BULK_COMMIT_EVERY_S`` whatever span the caller asked for."""
    store.begin_full("ev-1", NEW)
    clock = Clock()
    with batch(store, clock, every=0.25, in_service=True, new_event=True) as pages:
        assert pages.mode == BULK
        pages.save_page("ev-1", [ticket(n) for n in range(100, 100 + 3 * SLICE_ROWS)],
                        mark=True, skip=3 * SLICE_ROWS, anchor=("x",), total=400)
        clock.now = BULK_COMMIT_EVERY_S / 2  # past the asked span, within the bulk one
        page(pages, 1)
        assert committed(db) == (0, 0) and pages.commits == 0
        clock.now = BULK_COMMIT_EVERY_S
        page(pages, 3)
        assert committed(db) == (3 * SLICE_ROWS + 4, 4) and pages.commits == 1


def test_a_batch_names_how_it_writes(store: TicketStore) -> None:
    assert [batch(store, Clock(), in_service=s, new_event=n).mode
            for s, n in ((False, False), (True, False), (True, True), (False, True))] == \
        [WHOLE, SLICED, BULK, BULK]


def test_a_new_events_pages_stay_in_the_wal_until_many_pages(
        store: TicketStore, db: Path) -> None:
    """Its checkpoint waits for ``BULK_CHECKPOINT_PAGES``: the listing's pages are in the
    WAL, not checkpointed page by page, and the pool gets its interval back."""
    wal = db.with_name(db.name + "-wal")

    def interval(conn: Any) -> int:
        return int(conn.connection.driver_connection.execute(
            "PRAGMA wal_autocheckpoint").fetchone()[0])

    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        usual = interval(conn)
    store.begin_full("ev-1", NEW)
    with batch(store, Clock(), every=0.0, new_event=True) as pages:
        for start in range(0, 3000, 1000):
            pages.save_page("ev-1", [ticket(n, name="n" * 300)
                                     for n in range(start, start + 1000)],
                            mark=True, skip=start, anchor=(f"t{start}",))
        assert pages._conn is not None and interval(pages._conn) == BULK_CHECKPOINT_PAGES
    assert pages.commits == 1
    assert wal.stat().st_size // 4096 > 250  # ~300 pages of rows, none checkpointed yet
    with store.engine.connect() as conn:
        assert interval(conn) == usual != BULK_CHECKPOINT_PAGES


def test_a_batch_in_service_leaves_the_pool_its_usual_checkpoint_interval(
        store: TicketStore) -> None:
    def interval(conn: Any) -> int:
        return int(conn.connection.driver_connection.execute(
            "PRAGMA wal_autocheckpoint").fetchone()[0])

    with store.engine.connect() as conn:
        usual = interval(conn)
    store.begin_full("ev-1", NEW)
    with batch(store, Clock(), in_service=True) as pages:
        page(pages, 1)
        page(pages, 3)
        assert pages._conn is not None and interval(pages._conn) == SLICE_CHECKPOINT_PAGES
    with store.engine.connect() as conn:
        assert interval(conn) == usual != SLICE_CHECKPOINT_PAGES


@pytest.mark.parametrize("in_service", [False, True])
def test_an_empty_page_commits_its_cursor(store: TicketStore, db: Path,
                                          in_service: bool) -> None:
    store.begin_full("ev-1", NEW)
    with batch(store, Clock(), every=0.0, in_service=in_service) as pages:
        page(pages, 1)
        pages.save_page("ev-1", [], mark=True, skip=7, anchor=("t2",), total=2)
        assert committed(db) == (2, 7)


def test_a_store_in_service_slices_only_the_rows_a_write_changes(
        store: TicketStore, db: Path) -> None:
    """A reconcile's unchanged tickets take no slice (only their marks, with the first),
    so its commits and checkpoints follow what changed, not what was listed."""
    from sqlalchemy import event

    rows = [ticket(n) for n in range(10 * SLICE_ROWS)]
    store.upsert(rows)
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))

    def reconcile_page(changed: int) -> int:
        store.begin_full("ev-1", NEW)
        commits.clear()
        page = [ticket(n, name=f"round {changed}") if n < changed else ticket(n)
                for n in range(10 * SLICE_ROWS)]
        with batch(store, Clock(), every=60.0, in_service=True) as pages:
            assert pages.save_page("ev-1", page, mark=True, skip=len(page),
                                   anchor=("x",), overwrite=True) == changed
        assert store.seen_marks("ev-1") == len(page)
        assert store.sync_state("ev-1").full_skip == len(page)
        return len(commits)

    assert reconcile_page(0) == 1
    assert reconcile_page(3) == 1
    assert (store.get("t2").name, store.get("t3").name) == ("round 3", None)
    assert reconcile_page(2 * SLICE_ROWS + 1) == 3


def test_reading_a_pages_stored_rows_takes_the_write_lock_first(
        store: TicketStore, db: Path) -> None:
    """What the upsert decides from its read (rows equal to theirs, keys that moved) holds
    until it writes: no other writer comes between."""
    store.upsert([ticket(1)])
    other = sqlite3.connect(db, timeout=0)
    try:
        with store.engine.begin() as conn:
            differ, same = store._upserter.split_unchanged(
                conn, [data_row(ticket(1)), data_row(ticket(2))])
            assert (same, [row[0] for row in differ]) == (["t1"], ["t2"])
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE tickets SET status = 'INVALID'")
    finally:
        other.close()
