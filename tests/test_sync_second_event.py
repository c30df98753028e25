"""A second event's first full sync on a gate that serves a first one, as an operator runs
it (``gate sync --once`` processes against the simulator on loopback, real SQLite files):
written in bulk, killed mid-way it resumes and converges, and the first event's decisions
stay what they were throughout."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kits.gate import MakeGate, write_toml
from kits.sync import TOKEN, server_docs, sim_fixture  # noqa: F401

from scanner.decide.model import Direction, Reason
from scanner.sim import SimServer, World
from scanner.store.batch import BULK

# Enough pages (50 of 100) that a kill lands mid-listing and decisions run beside the sync;
# the simulator's latency, not the size, makes the sync last (waiting costs no CPU).
TICKETS = 5_000


@pytest.fixture
def world() -> World:
    return World(seed=7, events=2, tickets_per_event=TICKETS)


def gate_env(sim: SimServer, db: Path, *events: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    config = write_toml(db.with_name("gate.toml"), {"sync": {"page_size": 100}})
    return {**env, "GATE_API_URL": sim.url, "GATE_API_TOKEN": TOKEN, "GATE_DB": str(db),
            "GATE_EVENTS": ",".join(events), "GATE_CONFIG": str(config)}


def gate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=180)


def sync_popen(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "sync", "--once",
                             "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def full_skip(db: Path, event_id: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT full_skip FROM sync_state WHERE event_id = ?",
                               (event_id,)).fetchone()
    except sqlite3.Error:
        return 0
    return (row[0] or 0) if row else 0


@pytest.mark.slow
def test_killed_mid_way_the_second_events_first_sync_resumes_in_bulk_and_converges(
        tmp_path: Path, sim: SimServer, world: World, make_gate: MakeGate) -> None:
    first, second = world.event_ids
    db = tmp_path / "gate.db"
    assert gate("sync", "--once", env=gate_env(sim, db, first)).returncode == 0
    env = gate_env(sim, db, first, second)
    sim.faults.update(latency_ms=80)  # 50 pages of 100: long enough to kill mid-listing
    killed = sync_popen(env)
    deadline = time.monotonic() + 90
    while full_skip(db, second) == 0 and time.monotonic() < deadline \
            and killed.poll() is None:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    killed_at = full_skip(db, second)
    assert killed.returncode == -signal.SIGKILL and 0 < killed_at < TICKETS
    with sqlite3.connect(db) as conn:  # what the kill left is a sound database
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    sim.faults.update(latency_ms=0)
    resumed = gate("sync", "--once", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    report = {r["event_id"]: r for r in orjson.loads(resumed.stdout)}[second]
    assert (report["mode"], report["resumed"], report["written"]) == ("full", True, BULK)
    assert report["fetched"] <= TICKETS - killed_at + 100  # from its cursor, not from 0
    listed = gate("tickets", "--json", env=env)
    stored = {d["_id"]: d for d in map(orjson.loads, listed.stdout.splitlines())}
    expected = {**server_docs(world.current_tickets(first)),
                **server_docs(world.current_tickets(second))}
    assert stored == expected


@pytest.mark.slow
def test_the_first_events_decisions_stay_the_same_throughout_the_second_events_sync(
        tmp_path: Path, sim: SimServer, world: World, make_gate: MakeGate) -> None:
    first, second = world.event_ids
    db = tmp_path / "gate.db"
    assert gate("sync", "--once", env=gate_env(sim, db, first)).returncode == 0
    barcodes = [doc["barcode"] for doc in world.current_tickets(first)][::40]
    with make_gate(tmp_path, events=(first, second)) as gate_:
        keeper, store = gate_.gatekeeper, gate_.store
        before = {b: (keeper.decide(b, Direction.IN).reason, store.by_barcode(b))
                  for b in barcodes}
        assert Reason.GRANTED in {reason for reason, _ in before.values()}
        sim.faults.update(latency_ms=20)  # a sync of some seconds, decided beside
        syncing = sync_popen(gate_env(sim, db, first, second))
        during, n = 0, 0
        while syncing.poll() is None:
            barcode = barcodes[n % len(barcodes)]
            n += 1
            now = (keeper.decide(barcode, Direction.IN).reason, store.by_barcode(barcode))
            if syncing.poll() is None:
                during += 1
            assert now == before[barcode]
        out, err = syncing.communicate(timeout=30)
        assert syncing.returncode == 0, err
        assert during > len(barcodes)  # every barcode decided at least once beside it
        [report] = [r for r in orjson.loads(out) if r["event_id"] == second]
        assert (report["mode"], report["written"], report["total"]) == ("full", BULK, TICKETS)
        assert {b: (keeper.decide(b, Direction.IN).reason, store.by_barcode(b))
                for b in barcodes} == before
