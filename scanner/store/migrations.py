"""Schema migration steps for the ticket store and the journal.

``STEPS[n]`` takes a ticket store at version n-1 to version n inside one transaction. Version
3 is the exception: it moves the journal out of the store into its own database
(``move_journal``), which two databases cannot do in one transaction; the steps after it
run once it is done.

A fresh database is created straight from the metadata. The test suite keeps the DDL each
released version created (tests/data/schema_vN.sql, journal_schema_vN.sql) and checks that
such a database, migrated, has exactly the schema of a fresh one and keeps its rows.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Connection, MetaData, Table, func, select, text

from scanner.errors import StoreError
from scanner.journal.schema import (
    JOURNAL_SCHEMA_VERSION,
    journal,
    journal_meta,
    journal_metadata,
    mesh_conflicts,
    mesh_scans,
)
from scanner.store import faults
from scanner.store.keyed import put_meta
from scanner.store.schema import full_seen, meta, sync_state

VERSION_KEY = "schema_version"
# Set in the journal database in the transaction that copies a version-2 store's journal
# into it: "<scans>:<highest seq>" of the copy. Until the store drops its own copy, this is
# how a restart after a kill tells "copied, not yet dropped" from a foreign journal.
MOVED_FROM_KEY = "moved_from"
# Keys a version-2 store kept in its ``meta`` for the journal; they move with it.
JOURNAL_KEYS = ("clock_offset", "last_upload")
LAST_SINGLE_FILE = 2
_COPY_CHUNK = 5000

# The journal table as versions 1 and 2 of the store had it (the columns the move copies).
_legacy = Table("journal", MetaData(), *(Column(c.name, c.type) for c in journal.columns
                                          if c.name not in ("actuated_at", "passed")))


def _v1(conn: Connection) -> None:
    """Version 1 is the first schema: nothing to step from."""


def _v2(conn: Connection) -> None:
    """The journal's ticket index gains ``seq``, so history reads need no sort anywhere."""
    conn.exec_driver_sql("DROP INDEX ix_journal_ticket")
    conn.exec_driver_sql("CREATE INDEX ix_journal_ticket_seq ON journal (ticket_id, seq)")


def _v4(conn: Connection) -> None:
    """A full sync marks what it sees in ``full_seen``, not in each ticket's ``sync_gen``:
    the column and its index go, the sweep's walk gets its index. A full sync in progress
    kept its marks in ``sync_gen``: it is abandoned, and the next run starts a new one."""
    if conn.dialect.name == "sqlite":
        found = str(conn.exec_driver_sql("SELECT sqlite_version()").scalar_one())
        if tuple(int(n) for n in found.split(".")[:2]) < (3, 35):
            raise StoreError(f"SQLite {found} cannot drop a column (3.35 can); upgrade "
                             f"SQLite to open this store with this gate-scanner")
    full_seen.create(conn)
    conn.exec_driver_sql("DROP INDEX ix_tickets_event_gen")
    conn.exec_driver_sql("ALTER TABLE tickets DROP COLUMN sync_gen")
    conn.exec_driver_sql("CREATE INDEX ix_tickets_event ON tickets (event_id, id)")
    conn.execute(sync_state.update().where(sync_state.c.full_until.is_not(None))
                 .values(full_until=None, full_skip=None, full_anchor=None, full_total=None))


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2, 4: _v4}
# The version ``move_journal`` brings a store to; the steps above it follow in ``STEPS``.
MOVED_JOURNAL = 3


def _journal_v2(conn: Connection) -> None:
    """The venue mesh: every gate's records and the conflicts between them."""
    mesh_scans.create(conn)
    mesh_conflicts.create(conn)


# ``JOURNAL_STEPS[n]`` takes a journal database at version n-1 to n, in one transaction.
JOURNAL_STEPS: dict[int, Callable[[Connection], None]] = {2: _journal_v2}


def set_version(conn: Connection, version: int, table: Table = meta) -> None:
    put_meta(conn, VERSION_KEY, str(version), table)


def read_version(conn: Connection, table: Table) -> int:
    if not conn.dialect.has_table(conn, table.name):
        return 0
    row = conn.execute(select(table.c.value).where(table.c.key == VERSION_KEY)).first()
    if row is None:
        return 0
    try:
        return int(row[0])
    except ValueError:  # a page of garbage, not a version this code could have written
        kind = faults.STORE if table is meta else faults.JOURNAL
        what = f"{table.name}.{VERSION_KEY} is {str(row[0])[:40]!r}, not a number"
        raise faults.damaged(kind, faults.database_name(conn.engine.url), what) from None


# -- version 3: the journal moves to its own database ------------------------------------

def census(conn: Connection) -> str:
    """The store's legacy journal as "<scans>:<highest seq>", the copy's fingerprint."""
    count, top = conn.execute(select(func.count(), func.max(_legacy.c.seq))).one()
    return f"{count}:{top or 0}"


def journal_has_scans(conn: Connection) -> bool:
    return (conn.dialect.has_table(conn, journal.name)
            and conn.execute(select(journal.c.seq).limit(1)).first() is not None)


def copy_journal(source: Connection, target: Connection, fingerprint: str) -> None:
    """Copy every scan (seq and upload state kept) and the journal's keys from a version-2
    store into the journal database, all in ``target``'s one transaction, with the marker."""
    last = 0
    while True:
        rows = source.execute(select(_legacy).where(_legacy.c.seq > last)
                              .order_by(_legacy.c.seq).limit(_COPY_CHUNK)).mappings().all()
        if not rows:
            break
        target.execute(journal.insert(), [dict(row) for row in rows])
        last = rows[-1]["seq"]
    if last and target.dialect.name == "postgresql":
        # Explicit seqs leave the serial's sequence behind; the next scan must follow them.
        target.execute(text("SELECT setval(pg_get_serial_sequence('journal', 'seq'), :top)"),
                       {"top": last})
    for key, value in source.execute(select(meta.c.key, meta.c.value)
                                     .where(meta.c.key.in_(JOURNAL_KEYS))):
        put_meta(target, key, value, journal_meta)
    put_meta(target, MOVED_FROM_KEY, fingerprint, journal_meta)
    set_version(target, JOURNAL_SCHEMA_VERSION, journal_meta)


def drop_store_journal(conn: Connection) -> None:
    """The store's half of the move, once the copy is durable: drop the copy, go to v3."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS journal")
    conn.execute(meta.delete().where(meta.c.key.in_(JOURNAL_KEYS)))
    set_version(conn, 3)


def upgrade_in_place(conn: Connection) -> None:
    """Store and journal share one database: the journal table stays and gains its new
    columns, its keys move to ``journal_meta``; one transaction does it all."""
    for name in ("actuated_at", "passed"):
        kind = journal.c[name].type.compile(conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE journal ADD COLUMN {name} {kind}")
    journal_metadata.create_all(conn)  # journal_meta and the mesh tables; the journal stays
    for key, value in conn.execute(select(meta.c.key, meta.c.value)
                                   .where(meta.c.key.in_(JOURNAL_KEYS))).all():
        put_meta(conn, key, value, journal_meta)
    set_version(conn, JOURNAL_SCHEMA_VERSION, journal_meta)
    conn.execute(meta.delete().where(meta.c.key.in_(JOURNAL_KEYS)))
    set_version(conn, 3)


def check_resumable(marker: str, fingerprint: str, store: str, target: str) -> None:
    """A copy whose fingerprint no longer matches the store's journal is not ours to finish."""
    if marker != fingerprint:
        raise StoreError(f"{store}: half-finished journal move: {target} holds a copy of "
                         f"{marker} (scans:seq) but the store now holds {fingerprint}; "
                         f"keep both files and ask for help, nothing was deleted")
