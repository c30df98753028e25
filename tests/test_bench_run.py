"""``gate bench run`` at a small size: it reports every figure and verdict (no timing asserts:
the goals are the bench's own business)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest


@pytest.mark.slow
def test_bench_run_reports_latency_ready_rss_and_cpu_with_verdicts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "NOTIFY_"))}
    proc = subprocess.run([sys.executable, "-m", "scanner.cli.main", "bench", "run",
                           "--tickets", "2000", "--sync-tickets", "1000", "--scans", "10",
                           "--idle-seconds", "1", "--json"], env=env, capture_output=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    doc: dict[str, Any] = orjson.loads(proc.stdout)
    latency, start = doc["latency"], doc["start"]
    assert latency["lost"] == 0  # every read the bench chose as admissible opened the relay
    assert latency["under_sync_scans"] == 10 and latency["sync_rounds"] >= 1
    for row in ("check", "paced_check", "idle", "under_sync"):  # > 0: no relay rose before its line
        figures = latency[row]
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], row
    assert start["tickets"] == 2000 and start["exit"] == 0
    assert 0 < start["ready_s"] < 120
    assert 10 < start["rss_mb"] < 4096
    assert start["processes"] == 2  # gate run and its sync process, both counted
    assert start["cpu_percent"] >= 0
    assert [g["goal"].split()[0] for g in doc["goals"]] == \
        ["read-to-relay", "read-to-relay", "reads", "READY=1", "idle", "idle"]
    assert all(isinstance(g["pass"], bool) for g in doc["goals"])


def test_the_simulator_a_bench_starts_runs_at_idle_priority() -> None:
    """It stands for vivenu's servers: it must not take CPU from the gate being timed."""
    from scanner.bench.sync_runs import start_sim

    sim, _url = start_sim(10)
    try:
        assert os.sched_getscheduler(sim.pid) == os.SCHED_IDLE
    finally:
        sim.terminate()
        sim.wait(timeout=30)
