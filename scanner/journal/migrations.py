"""The journal database's schema history, and how a journal is taken out of an old store.

``JOURNAL.steps[n]`` takes a journal database at version n-1 to n, in one transaction
(``scanner.db.migrations``); a fresh one is created straight from the metadata.

Ticket stores before version 3 held the journal in a table of their own. Moving it out
(``scanner.databases``) copies it here with the functions below: the copy's fingerprint
(``census``) is left as a ``moved_from`` marker in the same transaction, so a restart after
a kill tells "copied, not yet dropped from the store" from a journal of other scans.

The test suite keeps the DDL each released version created (tests/data/
journal_schema_vN.sql) and checks that such a database, migrated, has exactly the schema
of a fresh one and keeps its rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Connection, MetaData, Table, func, select, text

from scanner.db import faults
from scanner.db.keyed import put_meta
from scanner.db.migrations import Schema
from scanner.errors import StoreError
from scanner.journal.schema import (
    JOURNAL_SCHEMA_VERSION,
    journal,
    journal_meta,
    journal_metadata,
    mesh_conflicts,
    mesh_scans,
    supervision,
    venue_commands,
)

# Set in the transaction that copies an old store's journal here: "<scans>:<highest seq>"
# of the copy. Until the store drops its own copy, this is how a restart after a kill
# tells "copied, not yet dropped" from a foreign journal.
MOVED_FROM_KEY = "moved_from"
_COPY_CHUNK = 5000

# The journal table as versions 1 and 2 of the store had it (the columns the move copies).
_legacy = Table("journal", MetaData(), *(Column(c.name, c.type) for c in journal.columns
                                          if c.name not in ("actuated_at", "passed")))


def _create(conn: Connection) -> bool:
    refuse_legacy(conn, faults.database_name(conn.engine.url))
    journal_metadata.create_all(conn)
    return True


def _v2(conn: Connection) -> None:
    """The venue mesh: every gate's records and the conflicts between them."""
    mesh_scans.create(conn)
    mesh_conflicts.create(conn)


def _v3(conn: Connection) -> None:
    """Venue commands: the supervisors' signed orders every gate keeps and obeys."""
    venue_commands.create(conn)


def _v4(conn: Connection) -> None:
    """Stewards and supervisors: who overrode, confirmed or released, and why."""
    supervision.create(conn)


JOURNAL = Schema(kind=faults.JOURNAL, meta=journal_meta, latest=JOURNAL_SCHEMA_VERSION,
                 create=_create, steps={2: _v2, 3: _v3, 4: _v4})


def refuse_legacy(conn: Connection, name: str) -> None:
    """A journal table without ``journal_meta`` is a whole store from before version 3."""
    if conn.dialect.has_table(conn, "journal"):
        raise StoreError(f"{name}: is a gate database from before version 3, not a journal; "
                         f"open it as the store (db), whose journal then moves out")


# -- a journal out of a store from before version 3 ----------------------------------------

def census(conn: Connection) -> str:
    """An old store's journal as "<scans>:<highest seq>", the copy's fingerprint."""
    count, top = conn.execute(select(func.count(), func.max(_legacy.c.seq))).one()
    return f"{count}:{top or 0}"


def has_scans(conn: Connection) -> bool:
    return (conn.dialect.has_table(conn, journal.name)
            and conn.execute(select(journal.c.seq).limit(1)).first() is not None)


def moved_from(conn: Connection) -> str | None:
    """The fingerprint of the store journal this journal was copied from, if it was."""
    return conn.execute(select(journal_meta.c.value)
                        .where(journal_meta.c.key == MOVED_FROM_KEY)).scalar()


def copy_journal(source: Connection, target: Connection, fingerprint: str,
                 keys: Sequence[tuple[str, str]]) -> None:
    """Create the journal in ``target`` and copy every scan (seq and upload state kept)
    from an old store's journal, its ``keys`` and the marker, all in ``target``'s one
    transaction."""
    journal_metadata.create_all(target)
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
    for key, value in keys:
        put_meta(target, key, value, journal_meta)
    put_meta(target, MOVED_FROM_KEY, fingerprint, journal_meta)
    JOURNAL.set_version(target, JOURNAL_SCHEMA_VERSION)


def upgrade_in_place(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Store and journal share one database: the old store's journal table stays and gains
    its new columns and the journal's own tables, with ``keys``."""
    for name in ("actuated_at", "passed"):
        kind = journal.c[name].type.compile(conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE journal ADD COLUMN {name} {kind}")
    journal_metadata.create_all(conn)  # journal_meta and the mesh tables; the journal stays
    for key, value in keys:
        put_meta(conn, key, value, journal_meta)
    JOURNAL.set_version(conn, JOURNAL_SCHEMA_VERSION)


def check_resumable(marker: str, fingerprint: str, store: str, target: str) -> None:
    """A copy whose fingerprint no longer matches the store's journal is not ours to finish."""
    if marker != fingerprint:
        raise StoreError(f"{store}: half-finished journal move: {target} holds a copy of "
                         f"{marker} (scans:seq) but the store now holds {fingerprint}; "
                         f"keep both files and ask for help, nothing was deleted")
