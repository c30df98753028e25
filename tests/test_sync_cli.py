"""``gate sync``, ``gate events``, ``gate tickets`` and ``gate bench sync`` as an operator
runs them: real processes against the simulator on loopback."""

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
from kits.gate import write_toml
from kits.sync import TOKEN, server_docs, sim_fixture  # noqa: F401

from scanner.sim import SimServer, World


@pytest.fixture
def world() -> World:
    return World(seed=5, events=1, tickets_per_event=20_000)


def gate_env(sim: SimServer, world: World, db: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    return {**env, "GATE_API_URL": sim.url, "GATE_API_TOKEN": TOKEN, "GATE_DB": str(db),
            "GATE_EVENTS": world.event_ids[0], "GATE_CONFIG": str(config)}


def write_config(path: Path, **tables: dict[str, object]) -> Path:
    """The file beside the environment: ``tables`` (else a page size), through the writer."""
    return write_toml(path, tables or {"sync": {"page_size": 100}})


def gate(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scanner.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def full_skip(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT full_skip FROM sync_state").fetchone()
    except sqlite3.Error:
        return 0
    return (row[0] or 0) if row else 0


@pytest.mark.slow
def test_sigkill_mid_full_sync_resumes_and_converges(tmp_path: Path, sim: SimServer,
                                                     world: World) -> None:
    db = tmp_path / "gate.db"
    env = gate_env(sim, world, db, write_config(tmp_path / "gate.toml"))
    sim.faults.update(latency_ms=5, mutate_per_page=2)  # slow enough to kill mid-run
    first = subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "sync", "--once"],
                             env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while full_skip(db) < 3000 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    _, first_err = first.communicate(timeout=30)
    killed_at = full_skip(db)
    assert first.returncode == -signal.SIGKILL and killed_at >= 3000
    sim.faults.update(latency_ms=0, mutate_per_page=0)
    second = gate("sync", "--once", env=env)
    assert second.returncode == 0, second.stderr
    assert "resuming full sync after ticket" in second.stderr
    resumed_from = int(second.stderr.split("resuming full sync after ticket ")[1].split()[0])
    assert resumed_from >= killed_at
    third = gate("sync", "--once", env=env)  # a delta: catches changes of the killed run
    assert third.returncode == 0, third.stderr
    listed = gate("tickets", "--json", env=env)
    stored = {d["_id"]: d for d in map(orjson.loads, listed.stdout.splitlines())}
    expected = server_docs(world.current_tickets(world.event_ids[0]))
    assert {k: stored.get(k) for k in expected} == expected
    assert all(world.find(d["barcode"]) is None for k, d in stored.items()
               if k not in expected)
    assert TOKEN not in first_err + second.stderr + third.stderr


def test_unreachable_server_is_one_line_and_nonzero(tmp_path: Path, sim: SimServer,
                                                    world: World) -> None:
    env = gate_env(sim, world, tmp_path / "gate.db",
                   write_config(tmp_path / "gate.toml", api={"retries": 0}))
    env["GATE_API_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    done = gate("sync", "--once", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("gate: error:") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_events_lists_and_stores_the_server_events(tmp_path: Path, sim: SimServer,
                                                   world: World) -> None:
    env = gate_env(sim, world, tmp_path / "gate.db", write_config(tmp_path / "gate.toml"))
    done = gate("events", "--json", env=env)
    assert orjson.loads(done.stdout) == world.events()


@pytest.mark.slow
def test_tickets_json_has_vivenu_field_names(tmp_path: Path, sim: SimServer,
                                             world: World) -> None:
    env = gate_env(sim, world, tmp_path / "gate.db", write_config(tmp_path / "gate.toml"))
    assert gate("sync", "--once", env=env).returncode == 0
    lines = gate("tickets", "--json", "--event", world.event_ids[0], env=env).stdout
    stored = [orjson.loads(line) for line in lines.splitlines()]
    assert len(stored) == world.count(world.event_ids[0])
    assert stored[0].keys() >= {"_id", "barcode", "eventId", "status", "updatedAt"}


# The bench's figures and verdicts, not its speed: a few pages of tickets are enough.
BENCH_TICKETS = 500


@pytest.mark.slow
def test_bench_sync_reports_its_figures(tmp_path: Path) -> None:
    done = gate("bench", "sync", "--tickets", str(BENCH_TICKETS), "--one-event", "--json",
                env={**os.environ, "GATE_CONFIG": ""})
    assert done.returncode == 0, done.stderr
    figures = orjson.loads(done.stdout)
    assert figures["store_count"] == BENCH_TICKETS
    assert figures["delta_upserted"] > 0
    assert figures["full_seconds"] > 0 and figures["tickets_per_second"] > 0
    assert figures["full_peak_rss_mb"] > 10
    # The verdict is the median of each alternating pair's ratio, one ratio per round.
    ratios = figures["paired_cpu_ratios"]
    assert len(ratios) == figures["rounds"] == 5 and ratios == sorted(ratios)
    assert figures["paired_cpu_ratio_median"] == ratios[2]
    assert figures["cpu_goal_met"] == (ratios[2] <= 1.0)
    assert "two_events" not in figures


@pytest.mark.slow
def test_bench_sync_two_event_round_reports_its_figures(tmp_path: Path) -> None:
    done = gate("bench", "sync", "--tickets", str(BENCH_TICKETS), "--rounds", "3", "--json",
                env={**os.environ, "GATE_CONFIG": ""}, timeout=600)
    assert done.returncode == 0, done.stderr
    # The two-event round: the second event's first sync, written in bulk, against the
    # plain loop run around it, alternating; the first event's checks beside it.
    two = orjson.loads(done.stdout)["two_events"]
    assert (two["second_upserted"], two["second_written"], two["plain_tickets"]) == \
        (BENCH_TICKETS, "bulk", BENCH_TICKETS)
    plain, walls = two["plain_wall_seconds"], two["second_wall_seconds"]
    assert len(plain) == len(walls) + 1 == 4
    assert two["second_ratios"] == [pytest.approx(w / ((a + b) / 2), abs=0.01)
                                    for w, a, b in zip(walls, plain[:-1], plain[1:], strict=True)]
    assert two["second_ratio"] == sorted(two["second_ratios"])[1]
    assert min(two["checks_beside"]) > 0
    assert [g["pass"] for g in two["goals"]] == [two["second_ratio"] <= 1.5,
                                                two["beside_ratio"] <= 2.0]
