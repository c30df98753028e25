"""A database created at schema v1 and migrated equals a freshly created one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect

from scanner.store import migrations
from scanner.store.db import make_engine, schema_version
from scanner.store.schema import SCHEMA_VERSION, metadata


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything the inspector reports about every table, in a comparable form."""
    found = inspect(engine)
    tables = {}
    for name in sorted(found.get_table_names()):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in found.get_columns(name)],
            "pk": found.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in found.get_indexes(name)),
            "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                             for u in found.get_unique_constraints(name)),
        }
    return tables


def _create_v1(path: Path) -> Engine:
    """A database as version 1 of the software created it."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        metadata.create_all(conn)  # v1's schema is the first metadata
        migrations.set_version(conn, 1)
    return engine


def test_migrated_v1_schema_equals_fresh(tmp_path: Path) -> None:
    old = _create_v1(tmp_path / "old.db")
    old.dispose()
    migrated = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_version(migrated) == SCHEMA_VERSION
    assert _schema(migrated) == _schema(fresh)


def test_schema_comparison_sees_a_missing_index(tmp_path: Path) -> None:
    """The comparison above can fail: a database lacking one index differs."""
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    damaged = make_engine(f"sqlite:///{tmp_path / 'damaged.db'}")
    with damaged.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_tickets_barcode")
    assert _schema(damaged) != _schema(fresh)
