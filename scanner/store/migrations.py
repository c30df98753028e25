"""Schema migration steps: ``STEPS[n]`` takes a database at version n-1 to version n.

A fresh database is created straight from ``schema.metadata``; the test suite checks that a
database migrated step by step from version 1 has exactly the same schema.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from scanner.store.keyed import put_meta


def _v1(conn: Connection) -> None:
    """Version 1 is the first schema: nothing to step from."""


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1}


def set_version(conn: Connection, version: int) -> None:
    put_meta(conn, "schema_version", str(version))
