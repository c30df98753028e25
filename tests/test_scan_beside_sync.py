"""A check never waits for the sync: the journal is its own database, and the store's
scan-path reads take no lock a writer holds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from kits.journal import journal_path, make_ticket

from scanner.decide.model import Direction, Reason

HELD_S = 3.0


def _hold_store_write_lock(store: Path, locked: threading.Event, release: threading.Event
                           ) -> None:
    """What a sync page does to the store, stretched: a write transaction left open."""
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE tickets SET seat = 'held'")
    locked.set()
    release.wait(HELD_S)
    conn.execute("COMMIT")
    conn.close()


def test_a_check_is_decided_and_journaled_while_the_store_is_write_locked(tmp_path: Path,
                                                                          make_gate):
    with make_gate(tmp_path) as gate:
        gate.store.upsert([make_ticket(1)])
        gate.gatekeeper.check(make_ticket(2).barcode, Direction.IN)  # open every part
        locked, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_store_write_lock,
                                  args=(tmp_path / "gate.db", locked, release))
        holder.start()
        try:
            assert locked.wait(10)
            held_since = time.monotonic()
            result = gate.gatekeeper.check(make_ticket(1).barcode, Direction.IN)
            waited = time.monotonic() - held_since
            still_held = holder.is_alive()
        finally:
            release.set()
            holder.join()
    assert result.decision.reason is Reason.GRANTED
    # Not a timing goal but a correctness bound: with a shared lock the check would have
    # waited out the whole transaction.
    assert still_held and waited < HELD_S / 4, waited
    # Durable: another process reads it from the journal file.
    query = f"SELECT reason FROM journal WHERE scan_id = '{result.scan_id}'"
    read = subprocess.run([sys.executable, "-c",
                           "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
                           ".execute(sys.argv[2]).fetchone()[0])",
                           str(journal_path(gate.config)), query],
                          capture_output=True, text=True, timeout=30, check=True)
    assert read.stdout.strip() == "GRANTED"
