"""``gate bench mesh`` end to end, small: real gates in their own processes on a real
mosquitto, a real broker outage, every gate converging."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _bench(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "scanner.cli.main", "bench", "mesh",
                          "--gates", "3", "--spread-scans", "5", "--scans", "30", "--json",
                          *args], capture_output=True, text=True, timeout=120, check=True)
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


@pytest.mark.slow
def test_each_gate_runs_in_its_own_process_by_default_and_all_converge() -> None:
    doc = _bench()
    assert doc["processes"] == 3
    assert doc["converged"] is True and doc["catch_up_cpu_s_per_gate"] > 0


@pytest.mark.slow
def test_gates_can_share_processes() -> None:
    doc = _bench("--processes", "1")
    assert doc["processes"] == 1 and doc["converged"] is True
