"""Schema migration steps: ``STEPS[n]`` takes a database at version n-1 to version n.

A fresh database is created straight from ``schema.metadata``; the test suite checks that a
database migrated step by step from version 1 has exactly the same schema.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from scanner.store.schema import meta


def _v1(conn: Connection) -> None:
    """Version 1 is the first schema: nothing to step from."""


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1}


def set_version(conn: Connection, version: int) -> None:
    if conn.dialect.name == "sqlite":
        stmt = sqlite_insert(meta).values(key="schema_version", value=str(version))
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"],
                                                set_={"value": str(version)}))
        return
    conn.execute(meta.delete().where(meta.c.key == "schema_version"))
    conn.execute(meta.insert().values(key="schema_version", value=str(version)))
