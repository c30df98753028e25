"""Schema migration steps: ``STEPS[n]`` takes a database at version n-1 to version n.

A fresh database is created straight from ``schema.metadata``. The test suite keeps the DDL
each released version created (tests/data/schema_vN.sql) and checks that such a database,
migrated step by step, has exactly the schema of a fresh one and keeps its rows.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Index, Table

from scanner.store.keyed import put_meta
from scanner.store.schema import journal


def _v1(conn: Connection) -> None:
    """Version 1 is the first schema: nothing to step from."""


def _v2(conn: Connection) -> None:
    """The journal's ticket index gains ``seq``, so history reads need no sort anywhere."""
    conn.exec_driver_sql("DROP INDEX ix_journal_ticket")
    _index(journal, "ix_journal_ticket_seq").create(conn)


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2}


def _index(table: Table, name: str) -> Index:
    """The index as the current schema declares it, so a step creates exactly that."""
    return next(index for index in table.indexes if index.name == name)


def set_version(conn: Connection, version: int) -> None:
    put_meta(conn, "schema_version", str(version))
