"""Pages of one ticket listing written several to a transaction.

Every commit holds whole pages, their seen marks and the cursor after the last of them (a
full sync's), so it is a prefix of the listing ending at a page boundary: a run killed at
any instant resumes after the last committed page, as with one transaction per page. What
the batch saves is SQLite's work per commit: each one writes every index page the rows
touched to the WAL, and a thousand random ids and barcodes touch hundreds of them, most of
them again on the next page.

A transaction stays open at most ``commit_every`` seconds (from its first write), so the
store's write lock is held only that long; the scan path never waits on it (its reads are
WAL reads, its journal another database), nor should another writer for long.

A store in service (the gate decides against it: a delta or a reconcile, not the first full
sync of a store holding no other event) is written in slices instead (``in_service``):
``SLICE_ROWS`` changed rows to a transaction, each followed by a checkpoint of its few
pages; a page's rows equal to their stored copy (most of a reconcile) are left out first.
The lock is not what a decision waits for there but the disk: the journal fsyncs every
scan, and that flush waits for the random page writes the device holds from the store's
last checkpoint. A checkpoint of a quarter second's batch put thousands of them on the disk
at once and the scans behind them waited tens of milliseconds; the smaller each checkpoint,
the closer that wait stays to an idle disk's (the README has the figures of each size). The
price, a commit and a checkpoint per slice, is paid by the background sync, and the first
full sync, which no decision can use before it ends, is not sliced.

The first full sync of an event beside events the gate serves (``new_event``) is written in
bulk instead: its rows are new, so slices would write one index page per row (a random
barcode lands on its own leaf of the barcode index), an order of magnitude more work than
whole pages. Whole pages go to the WAL, whose appends a journal flush barely waits for (no
fsync with ``synchronous=NORMAL``); the checkpoint, the part that puts random pages on the
disk, waits until the WAL holds ``BULK_CHECKPOINT_PAGES``, so it comes seldom and one check
waits behind it, not every check behind a stream of them. Transactions stay open
``BULK_COMMIT_EVERY_S``: each commit writes the index pages it touched to the WAL again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import SQLAlchemyError

from scanner.db import faults
from scanner.errors import StoreError
from scanner.store import seen
from scanner.store import sync_state as state
from scanner.store.upsert import Row, Upserter, data_row
from scanner.tickets import Ticket

# A transaction's longest span: the write lock another writer might queue behind, and the
# work a kill may undo (the run resumes before it). Long enough for several pages.
COMMIT_EVERY_S = 0.25
# SQLite's page cache while a batch writes, in KiB (0: SQLite's default, 2 MiB). A million
# tickets' id and barcode indexes are tens of MiB: with the default, nearly every row's
# index leaf is read back from the OS and written to the WAL again, a cost that grows
# with the store. Freed when the batch ends.
WRITER_CACHE_KIB = 32 * 1024
# A store in service: rows per transaction, and the WAL pages after which its connection
# checkpoints (SQLite's wal_autocheckpoint; its default is 1000): every slice, in effect.
SLICE_ROWS = 8
SLICE_CHECKPOINT_PAGES = 8
# A new event's first full sync beside served events: the WAL pages (4 KiB each) after
# which it checkpoints, and a transaction's least span (module docstring).
BULK_CHECKPOINT_PAGES = 16_384
BULK_COMMIT_EVERY_S = 2.0

# How a batch writes (``PageBatch.mode``): whole pages with SQLite's own checkpoints (a
# store no decision reads yet), slices of a store in service, or a new event in bulk.
WHOLE, SLICED, BULK = "whole", "sliced", "bulk"


class PageBatch:
    """Writes pages in transactions of up to ``commit_every`` seconds; a context manager.

    Leaving it commits the pages written, also on an exception raised between pages (a
    fault fetching the next one, a stop): they are whole. A fault while a page is written
    rolls back the whole open transaction (its pages are read again on resume).

    ``in_service`` (SQLite only): each page is written ``SLICE_ROWS`` rows to a
    transaction, the cursor with its last slice, so what is committed is still a prefix of
    the listing (a kill within a page leaves part of it, written again on resume: the
    upsert is idempotent, and the cursor is still the last whole page's).

    ``new_event`` (SQLite only; it takes precedence over ``in_service``): the first full
    sync of an event beside served ones, whole pages in transactions of at least
    ``BULK_COMMIT_EVERY_S``, checkpointed after ``BULK_CHECKPOINT_PAGES``."""

    def __init__(self, engine: Engine, upserter: Upserter, name: str, *,
                 commit_every: float = COMMIT_EVERY_S, in_service: bool = False,
                 new_event: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        sqlite = engine.dialect.name == "sqlite"
        self.mode = BULK if new_event and sqlite else SLICED if in_service and sqlite \
            else WHOLE
        self._engine = engine
        self._upserter = upserter
        self._name = name
        self._commit_every = max(commit_every, BULK_COMMIT_EVERY_S) if self.mode == BULK \
            else commit_every
        self._slice = SLICE_ROWS if self.mode == SLICED else 0
        self.commits = 0  # transactions committed: slices, or batches of whole pages
        self._clock = clock
        self._conn: Connection | None = None
        self._trans: RootTransaction | None = None
        self._opened = 0.0
        self._cursor: tuple[str, int, tuple[str, ...], int | None] | None = None
        self._pragmas_before: dict[str, int] = {}

    def save_page(self, event_id: str, batch: list[Ticket] | list[Row], *,
                  mark: bool = False, skip: int | None = None,
                  anchor: tuple[str, ...] = (), total: int | None = None,
                  trusted_until: str | None = None, overwrite: bool = False) -> int:
        """Upsert one page (as ``TicketStore.upsert``), with ``mark`` its tickets' seen
        marks for the event's full sync (``scanner.store.seen``) and, for a full sync
        (``skip`` given), the cursor after it, in the open transaction; returns tickets
        changed. ``batch``: Tickets, or the data rows the sync parses pages into
        (``stored_row``)."""
        rows = cast("list[Row]", batch) if not batch or type(batch[0]) is tuple \
            else [data_row(t) for t in batch]  # type: ignore[arg-type]
        changed = 0
        try:
            # An empty page too opens the transaction its cursor goes in.
            conn = self._begin()
            if self._slice:
                # Slices hold only rows a write changes: a reconcile's unchanged tickets
                # cost no slices, only their marks.
                rows, same = self._upserter.split_unchanged(conn, rows)
                if mark and same:
                    seen.mark(conn, event_id, same)
            step = self._slice or max(len(rows), 1)
            for start in range(0, len(rows), step):
                if start:
                    self.commit()  # a slice of a store in service: no cursor yet
                    conn = self._begin()
                part = rows[start:start + step]
                changed += self._upserter.write(conn, part, trusted_until=trusted_until,
                                                overwrite=overwrite)
                if mark:
                    seen.mark(conn, event_id, [row[0] for row in part])
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, SQLAlchemyError):
                raise self._fault(exc) from exc
            raise
        if skip is not None:
            # Only the newest cursor is ever committed: it is written with the commit.
            self._cursor = (event_id, skip, anchor, total)
        if self._slice or self._clock() - self._opened >= self._commit_every:
            self.commit()
        return changed

    def commit(self) -> None:
        """Commit the pages written so far (before another writer needs the lock)."""
        if self._trans is None:
            return
        assert self._conn is not None
        trans, self._trans = self._trans, None
        cursor, self._cursor = self._cursor, None
        try:
            if cursor is not None:
                event_id, skip, anchor, total = cursor
                state.save_cursor(self._conn, event_id, skip=skip, anchor=anchor, total=total)
            trans.commit()
            self.commits += 1
        except BaseException as exc:
            self._rollback(trans)
            if isinstance(exc, SQLAlchemyError):
                raise self._fault(exc) from exc
            raise

    def __enter__(self) -> PageBatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.commit()
        finally:
            self._close()

    def _begin(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
            self._tune()
        if self._trans is None:
            self._trans = self._conn.begin()
            self._opened = self._clock()
        return self._conn

    def _rollback(self, trans: RootTransaction | None = None) -> None:
        """Undo the open transaction (or ``trans``), pages and cursor, and drop the
        connection."""
        trans = trans or self._trans
        self._trans, self._cursor = None, None
        try:
            if trans is not None:
                trans.rollback()
        except SQLAlchemyError:
            pass  # the connection is dropped below; the database rolls back itself
        self._close()

    def _tune(self) -> None:
        """SQLite: a page cache that holds the indexes a listing's rows land in, for as
        long as this batch writes (``WRITER_CACHE_KIB``), and for a store in service a
        checkpoint after every slice (``SLICE_CHECKPOINT_PAGES``), for a new event one
        after many pages (``BULK_CHECKPOINT_PAGES``)."""
        assert self._conn is not None
        if self._engine.dialect.name != "sqlite":
            return
        checkpoint = {SLICED: SLICE_CHECKPOINT_PAGES, BULK: BULK_CHECKPOINT_PAGES}
        wanted = {"cache_size": -WRITER_CACHE_KIB if WRITER_CACHE_KIB else 0,
                  "wal_autocheckpoint": checkpoint.get(self.mode, 0)}
        driver: Any = self._conn.connection.driver_connection  # sqlite3.Connection
        for pragma, value in wanted.items():
            if not value:
                continue
            try:
                before = int(driver.execute(f"PRAGMA {pragma}").fetchone()[0])
                driver.execute(f"PRAGMA {pragma}={value}")
            except self._engine.dialect.loaded_dbapi.Error:
                continue  # only speed is at stake: the batch writes with what it has
            self._pragmas_before[pragma] = before

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        before, self._pragmas_before = self._pragmas_before, {}
        try:
            if before and not conn.invalidated:
                # Back to the pool as it was, the batch's pages freed.
                driver: Any = conn.connection.driver_connection
                for pragma, value in before.items():
                    driver.execute(f"PRAGMA {pragma}={value}")
        except self._engine.dialect.loaded_dbapi.Error:
            conn.invalidate()  # not back to the pool tuned for a batch
        finally:
            conn.close()

    def _fault(self, exc: SQLAlchemyError) -> StoreError:
        return faults.failed(faults.STORE, self._name, "write", exc)

