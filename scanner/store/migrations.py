"""The ticket store's schema history.

``STORE.steps[n]`` takes a ticket store at version n-1 to version n inside one transaction
(``scanner.db.migrations``). Version 3 is the exception: it moves the journal out of the
store into its own database, which two databases cannot do in one transaction; it is
``scanner.databases``'s, which knows both, and ends with ``drop_store_journal``.

A fresh database is created straight from the metadata. The test suite keeps the DDL each
released version created (tests/data/schema_vN.sql) and checks that such a database,
migrated, has exactly the schema of a fresh one and keeps its rows.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from scanner.db import faults
from scanner.db.migrations import Schema
from scanner.errors import StoreError
from scanner.store.schema import SCHEMA_VERSION, full_seen, meta, metadata, sync_state

# Keys a version-2 store kept in its ``meta`` for the journal; they move with it.
JOURNAL_KEYS = ("clock_offset", "last_upload")
# The last version that held the journal, and the one that moved it out.
LAST_SINGLE_FILE = 2
MOVED_JOURNAL = 3


def _create(conn: Connection) -> bool:
    if conn.dialect.has_table(conn, "tickets"):
        return False  # a store from before versions were kept: stepped up from 1
    metadata.create_all(conn)
    return True


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


STORE = Schema(kind=faults.STORE, meta=meta, latest=SCHEMA_VERSION, create=_create,
               steps={1: _v1, 2: _v2, 4: _v4})


# -- version 3: the journal moves to its own database ------------------------------------

def journal_keys(conn: Connection) -> list[tuple[str, str]]:
    """The journal's keys a version-2 store kept in its ``meta``."""
    rows = conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(JOURNAL_KEYS)))
    return [(key, value) for key, value in rows]


def drop_store_journal(conn: Connection) -> None:
    """The store's half of the move, once the copy is durable: drop the copy, go to v3."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS journal")
    hand_over_journal(conn)


def hand_over_journal(conn: Connection) -> None:
    """The journal's keys leave the store's ``meta``, which is then version 3."""
    conn.execute(meta.delete().where(meta.c.key.in_(JOURNAL_KEYS)))
    STORE.set_version(conn, MOVED_JOURNAL)
