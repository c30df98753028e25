"""A scan-path read that meets SQLite's rare reader stall (SQLITE_BUSY past its short lock
wait) is tried again on a fresh connection, so the visitor's check does not fail for it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, select

import scanner.db.driver_sql as driver_sql
from scanner.databases import make_engine
from scanner.db.driver_sql import (
    SCAN_BUSY_RETRIES,
    SCAN_BUSY_TIMEOUT_MS,
    HeldConnection,
    compile_for_driver,
)
from scanner.store.schema import tickets


def stalling(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the first ``times`` statements fail as a stalled WAL read does."""
    calls: list[int] = []
    real = driver_sql._run

    def run(conn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise sqlite3.OperationalError("database is locked")
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(driver_sql, "_run", run)
    return calls


@pytest.fixture
def held(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    conn = HeldConnection(engine, "the ticket store", busy_timeout_ms=SCAN_BUSY_TIMEOUT_MS)
    stmt = compile_for_driver(
        select(tickets.c.id).where(tickets.c.barcode == bindparam("barcode")),
        engine.dialect, ("barcode",))
    yield conn, stmt
    conn.close()
    engine.dispose()


def test_a_stalled_scan_read_is_tried_again_and_answers(
        held: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, stmt = held
    calls = stalling(SCAN_BUSY_RETRIES, monkeypatch)
    assert conn.execute(stmt, ['NO-SUCH-CODE']) == []
    assert len(calls) == SCAN_BUSY_RETRIES + 1


def test_a_read_that_keeps_stalling_fails_after_its_retries(
        held: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, stmt = held
    calls = stalling(SCAN_BUSY_RETRIES + 1, monkeypatch)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        conn.execute(stmt, ['NO-SUCH-CODE'])
    assert len(calls) == SCAN_BUSY_RETRIES + 1
