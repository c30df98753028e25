"""An upgraded database equals a fresh one: each released schema, as frozen in
tests/data/schema_vN.sql, is migrated step by step and compared, rows and all."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect

from scanner.decide.model import Direction
from scanner.errors import StoreError
from scanner.journal import Journal
from scanner.store.db import make_engine, schema_version
from scanner.store.schema import SCHEMA_VERSION
from scanner.store.tickets import TicketStore

DATA = Path(__file__).parent / "data"
RELEASED = sorted(int(p.stem.removeprefix("schema_v")) for p in DATA.glob("schema_v*.sql"))


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


def _released(version: int, path: Path) -> Path:
    """A database exactly as that release created it, with a ticket and a scan in it."""
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / f"schema_v{version}.sql").read_text(encoding="utf-8"))
        conn.execute("INSERT INTO tickets (id, barcode, event_id, status, ticket_type_id,"
                     " ticket_name, seller_id, created_at, updated_at, sync_gen) VALUES"
                     " ('t1', 'OLDTICKET1', 'e1', 'VALID', 'tt', 'GA', 's1',"
                     " '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', 1)")
        conn.execute("INSERT INTO journal (scan_id, gate_id, event_id, ticket_id, barcode,"
                     " direction, result, reason, message, scanned_at, offline,"
                     " upload_state) VALUES ('s-1', 'north', 'e1', 't1', 'OLDTICKET1', 'IN',"
                     " 'OK', 'GRANTED', '', '2030-01-01T10:00:00.000Z', 1, 'pending')")
    return path


def test_every_schema_version_is_frozen() -> None:
    """A change to schema.py without a version bump, a step and a snapshot fails here or in
    the comparison below (the current snapshot must equal a fresh database)."""
    assert list(range(1, SCHEMA_VERSION + 1)) == RELEASED


@pytest.mark.parametrize("version", RELEASED)
def test_upgraded_schema_equals_fresh(tmp_path: Path, version: int) -> None:
    migrated = make_engine(f"sqlite:///{_released(version, tmp_path / 'old.db')}")
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_version(migrated) == SCHEMA_VERSION
    assert _schema(migrated) == _schema(fresh)


@pytest.mark.parametrize("version", RELEASED)
def test_upgrade_keeps_tickets_and_scans(tmp_path: Path, version: int) -> None:
    engine = make_engine(f"sqlite:///{_released(version, tmp_path / 'old.db')}")
    [ticket] = TicketStore(engine).by_barcode("OLDTICKET1")
    assert ticket.id == "t1"
    history = Journal(engine, "north").history("t1")
    assert [(s.direction, s.gate_id) for s in history.scans] == [(Direction.IN, "north")]


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = _released(1, tmp_path / "future.db")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer than this gate-scanner"):
        make_engine(f"sqlite:///{path}")


def test_schema_comparison_sees_a_missing_index(tmp_path: Path) -> None:
    """The comparison above can fail: a database lacking one index differs."""
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    damaged = make_engine(f"sqlite:///{tmp_path / 'damaged.db'}")
    with damaged.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_tickets_barcode")
    assert _schema(damaged) != _schema(fresh)
