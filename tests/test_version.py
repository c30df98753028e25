"""One version everywhere, read from the installed package's metadata: ``gate --version``,
the status document and ``/api/status``, ``/metrics``' ``gate_build_info`` and the first
line ``gate run`` logs."""

# The ``handheld`` fixture is test_run_e2e's.
# ruff: noqa: F811

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from kits import loopback
from kits.kiosk import KioskGate
from prometheus_client.parser import text_string_to_metric_families
from test_run_e2e import Daemon, Handheld, environment, handheld, write_config  # noqa: F401

from scanner.sim import SimServer

INSTALLED = version("gate-scanner")


@pytest.fixture
def kg(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    gate = KioskGate(tmp_path, sim_server)
    yield gate
    gate.close()


def test_gate_version_is_the_package_metadata() -> None:
    done = subprocess.run([sys.executable, "-m", "scanner.cli.main", "--version"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == f"gate-scanner {INSTALLED}\n"


def test_status_json_names_the_version(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "scanner.cli.main", "status", "--json"],
                          capture_output=True, text=True, timeout=60,
                          env={"GATE_DB": str(tmp_path / "gate.db"), "PATH": ""})
    assert json.loads(done.stdout)["version"] == INSTALLED, done.stderr


def test_metrics_carry_the_build_info_gauge(kg: KioskGate) -> None:
    families = {f.name: f for f in text_string_to_metric_families(
        loopback.get(kg.url + "/metrics").text)}
    [sample] = families["gate_build_info"].samples
    assert (sample.labels, sample.value) == ({"version": INSTALLED}, 1.0)


def test_api_status_names_the_version(kg: KioskGate) -> None:
    assert loopback.get(kg.url + "/api/status").json()["version"] == INSTALLED


def test_healthz_names_the_version(kg: KioskGate) -> None:
    assert loopback.get(kg.url + "/healthz").json()["version"] == INSTALLED


@pytest.mark.slow
def test_gate_runs_first_log_line_names_the_version(tmp_path: Path, sim_server: Any,
                                                   handheld: Handheld) -> None:
    config = write_config(tmp_path, sim_server, handheld)
    daemon = Daemon(environment(config, sim_server), tmp_path / "run.log")
    try:
        daemon.wait_log("starting")
    finally:
        assert daemon.signal(signal.SIGTERM) == 0
    first = daemon.log().splitlines()[0]
    assert f"INFO scanner.run: gate-scanner {INSTALLED} starting: gate e2e-1, " in first
