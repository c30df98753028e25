"""One fault line for every store on a database (``scanner.db.database.Database``): the
ticket store, the journal and the mesh store each turn a database error met reading or
writing into one StoreError naming what failed and the file, and hand their held
connections back on close. Real SQLite files, a table dropped under the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scanner.databases import make_engine, make_journal_engine
from scanner.db.database import Database
from scanner.errors import CorruptStore, StoreError
from scanner.journal import Journal
from scanner.mesh.peer_journal import MeshStore
from scanner.store.tickets import TicketStore


@dataclass(frozen=True)
class Case:
    file: str                          # the database the store works on
    table: str                         # a table the calls below need
    read: Callable[[Any], object]
    write: Callable[[Any], object]
    kind: str


CASES = {
    "ticket store": Case("gate.db", "events", lambda s: s.events(),
                         lambda s: s.save_events([{"_id": "e1", "name": "Gala"}]),
                         "ticket store"),
    "journal": Case("gate-journal.db", "journal_meta", lambda j: j.saved_clock_offset(),
                    lambda j: j.save_clock_offset(1.5), "journal"),
    "mesh store": Case("gate-journal.db", "journal_meta", lambda m: m.link_state(),
                       lambda m: m.save_link_state({"connected": True}, "2030-01-01T00:00:00Z"),
                       "journal"),
}


@pytest.fixture(params=sorted(CASES))
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, Case]]:
    store_engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    journal_engine = make_journal_engine(f"sqlite:///{tmp_path / 'gate-journal.db'}",
                                         store=store_engine)
    made: dict[str, Callable[[], Database]] = {
        "ticket store": lambda: TicketStore(store_engine),
        "journal": lambda: Journal(journal_engine, "g1"),
        "mesh store": lambda: MeshStore(journal_engine, "g1"),
    }
    database = made[request.param]()
    yield database, CASES[request.param]
    database.close()
    store_engine.dispose()
    journal_engine.dispose()


def drop(path: Path, table: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize("doing", ["read", "write"])
def test_a_fault_is_one_store_error_naming_what_failed_and_the_file(
        opened: tuple[Database, Case], tmp_path: Path, doing: str) -> None:
    database, case = opened
    case.write(database)  # works before the fault
    drop(tmp_path / case.file, case.table)
    with pytest.raises(StoreError) as info:
        (case.read if doing == "read" else case.write)(database)
    assert not isinstance(info.value, CorruptStore)  # a missing table is no damaged page
    assert str(info.value) == (f"cannot {doing} the {case.kind} {tmp_path / case.file}: "
                               f"OperationalError: no such table: {case.table}")


def test_close_hands_every_held_connection_back_and_they_open_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    store = TicketStore(engine)
    assert store.by_barcode("NONE-0001") == []
    assert engine.pool.checkedout() == 1  # the lookup's held connection
    store.close()
    assert engine.pool.checkedout() == 0
    assert store.by_barcode("NONE-0001") == []  # opened again on the next lookup
    store.close()
    assert engine.pool.checkedout() == 0
    engine.dispose()
