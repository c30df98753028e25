"""Writing one row by its primary key on any dialect: ``meta`` keys and sync progress.

SQLite and PostgreSQL get ``INSERT ... ON CONFLICT DO UPDATE``: one statement, atomic even
when two processes (the daemon and ``gate upload``, say) write the same key at once. Other
dialects update, then insert when nothing was there; on SQLite that order would be safe too
(writers are serialized), on a server with concurrent writers only the upsert is.

Also the small reads and locks that decide such writes: ``lock_for_write``, and
``holds_other_than`` for "does this table hold any event but this one"; and the key/value
table each database keeps its own keys in (``key_value_table``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Column, Connection, MetaData, String, Table, Text, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

# (table) -> an INSERT with ``on_conflict_do_update``; both dialects spell it the same.
ConflictInsert = Callable[[Table], Any]


def conflict_insert(dialect: Dialect) -> ConflictInsert | None:
    """The dialect's ``insert`` that can say ON CONFLICT, or None if it has none."""
    if dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite
        return sqlite.insert
    if dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql
        return postgresql.insert
    return None


def lock_for_write(conn: Connection, table: Table | None = None) -> None:
    """Take the write lock of ``conn``'s transaction now, so a read and the writes decided
    on it are one step no other writer comes between. SQLite: ``BEGIN IMMEDIATE`` unless
    the transaction has begun (the driver begins one at the first write, which took the
    lock); DDL after it is in the transaction too, so a schema appears whole or not at
    all. PostgreSQL, given the ``table`` the decided writes go to: that table's writers
    wait until this transaction ends (readers never do), as a row the read did not find
    has nothing ``FOR UPDATE`` could lock. Otherwise other dialects lock the rows a read
    names (``FOR UPDATE``) instead."""
    if conn.dialect.name == "postgresql" and table is not None:
        # SHARE ROW EXCLUSIVE conflicts with itself and with every row write, not reads.
        name = conn.dialect.identifier_preparer.format_table(table)
        conn.exec_driver_sql(f"LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE")
        return
    if conn.dialect.name != "sqlite":
        return
    driver: Any = conn.connection.driver_connection  # sqlite3.Connection
    if not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")


def holds_other_than(conn: Connection, column: ColumnElement[Any], value: Any) -> bool:
    """Whether ``column`` holds any value but ``value``: its least and greatest, two index
    seeks where it leads an index, not a scan or a count."""
    low, high = conn.execute(select(select(func.min(column)).scalar_subquery(),
                                    select(func.max(column)).scalar_subquery())).one()
    return low is not None and not low == high == value


def put_row(conn: Connection, table: Table, key: Mapping[str, Any],
            values: Mapping[str, Any]) -> None:
    """Set ``values`` on the row of ``table`` whose primary key is ``key``, creating it
    (with the columns' defaults for the rest) if absent."""
    insert = conflict_insert(conn.dialect)
    if insert is not None:
        stmt = insert(table).values({**key, **values})
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=dict(values)))
        return
    match = [table.c[name] == value for name, value in key.items()]
    if conn.execute(table.update().where(*match).values(dict(values))).rowcount == 0:
        conn.execute(table.insert().values({**key, **values}))


def key_value_table(name: str, metadata: MetaData) -> Table:
    """A database's own keys (schema version, ids, small saved states): text by text key."""
    return Table(name, metadata, Column("key", String, primary_key=True),
                 Column("value", Text, nullable=False))


def put_meta(conn: Connection, key: str, value: str, table: Table) -> None:
    """Set one key of a key/value table (the store's ``meta``, the journal's
    ``journal_meta``)."""
    put_row(conn, table, {"key": key}, {"value": value})
