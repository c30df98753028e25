"""Two ``gate run`` subprocesses sharing scans over a real mosquitto, against one simulator:
each gate its own store and journal, a pty handheld, ``[mesh]`` with a key file and a
credentials file, the shipped ACL."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kits.journal import journal_path
from kits.mesh import KEY, Broker
from test_run_e2e import (
    E2E_WAIT,
    REPO,
    Daemon,
    Handheld,
    environment,
    journaled,
    valid_barcodes,
    write_config,
)

from scanner.config import load_config
from scanner.mesh.localbroker import password

# Hyphenated, as real venues name them (the demo's gate is demo-north-1).
GATES = ["gate-a", "north-1"]


class RunGate:
    """One gate's folder, config and environment; ``start()`` runs ``gate run``."""

    def __init__(self, folder: Path, gate_id: str, sim: Any, url: str, *,
                 credentials: bool = True, netns: str | None = None) -> None:
        folder.mkdir()
        self.folder, self.gate_id, self.netns = folder, gate_id, netns
        self.handheld = Handheld()
        key, creds = folder / "venue.key", folder / "mesh.credentials"
        for file, text in ((key, KEY.decode()), (creds, f"{gate_id}:{password(gate_id)}")):
            file.write_text(text)
            file.chmod(0o600)
        login = {"credentials_file": str(creds)} if credentials else {}
        self.config = write_config(folder, sim, self.handheld, gate_id=gate_id,
                                   mesh={"url": url, "key_file": str(key), **login})
        self.env = environment(self.config, sim)
        self.daemon: Daemon | None = None

    def start(self) -> Daemon:
        self.daemon = Daemon(self.env, self.folder / "run.log",
                             prefix=["ip", "netns", "exec", self.netns] if self.netns else [])
        return self.daemon

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "scanner.cli.main", *args], env=self.env,
                              cwd=REPO, capture_output=True, text=True, timeout=E2E_WAIT)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def peer_records(self, origin: str) -> int:
        path = journal_path(load_config(self.config, env=self.env))
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM mesh_scans WHERE origin = ?",
                                  (origin,)).fetchone()[0])

    def conflicts(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.cli("conflicts", "--json").splitlines()]

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.kill()
        self.handheld.close()


@pytest.fixture
def venue(tmp_path: Path, sim_server: Any) -> Iterator[tuple[Broker, RunGate, RunGate]]:
    broker = Broker(tmp_path / "broker", GATES).start()
    a, b = (RunGate(tmp_path / g, g, sim_server, broker.url) for g in GATES)
    try:
        yield broker, a, b
    finally:
        a.close()
        b.close()
        broker.stop()


def until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + E2E_WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def started(a: RunGate, b: RunGate, count: int) -> list[str]:
    codes = valid_barcodes(a.config, a.env, count)
    valid_barcodes(b.config, b.env, count)  # both synced before they start
    for gate in (a, b):
        gate.start().wait_log("mesh: connected")
    return codes


@pytest.mark.slow
def test_a_ticket_granted_at_a_is_refused_at_b_and_each_scan_is_uploaded_once(
        venue: tuple[Broker, RunGate, RunGate], sim_server: Any) -> None:
    _, a, b = venue
    [code] = started(a, b, 1)
    a.handheld.scan(code)
    assert a.daemon and b.daemon
    a.daemon.wait_log(r"decision \S+ GRANTED IN \S+ hand")
    until(lambda: b.peer_records("gate-a") == 1, "gate B to hold gate A's scan")
    b.handheld.scan(code)
    b.daemon.wait_log(r"decision \S+ ALREADY_INSIDE IN \S+ hand: .*gate-a")
    until(lambda: len(sim_server.world.scans) >= 2, "both scans uploaded")
    time.sleep(1.0)  # several upload rounds more: a second copy would arrive now
    own = [e for gate in (a, b) for e in journaled(gate.config, gate.env).values()]
    key = ("barcode", "scanned_at", "direction")
    uploaded = Counter(tuple(s[k] for k in key) for s in sim_server.world.scans)
    assert uploaded == Counter(tuple(e[k] for k in key) for e in own)
    assert len(own) == 2 and set(uploaded.values()) == {1}


@pytest.mark.slow
def test_both_sides_of_a_broker_outage_grant_and_then_list_the_same_conflict(
        venue: tuple[Broker, RunGate, RunGate]) -> None:
    broker, a, b = venue
    [code] = started(a, b, 1)
    assert a.daemon and b.daemon
    broker.stop()
    for gate in (a, b):
        assert gate.daemon
        gate.daemon.wait_log("mesh: partitioned")
    until(lambda: json.loads(a.cli("status", "--json"))["mesh"]["partitioned"],
          "gate status (another process) to show gate A partitioned")
    a.handheld.scan(code)
    b.handheld.scan(code)
    for gate in (a, b):
        gate.daemon.wait_log(r"decision \S+ GRANTED IN \S+ hand")
    broker.start()
    for gate in (a, b):
        gate.daemon.wait_log("mesh: healed")
    until(lambda: len(a.conflicts()) == len(b.conflicts()) == 1, "both to list the conflict")
    first, second = a.conflicts()[0], b.conflicts()[0]
    assert {k: v for k, v in first.items() if k != "detected_at"} \
        == {k: v for k, v in second.items() if k != "detected_at"}
    assert {first["first"]["gate"], first["second"]["gate"]} == set(GATES)
    status = json.loads(a.cli("status", "--json"))["mesh"]
    assert status["conflicts"] == 1 and not status["partitioned"]
    assert all(g.daemon and g.daemon.log().count("mesh: partitioned") == 1 for g in (a, b))
