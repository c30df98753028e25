"""Crash safety: a scanning process and an uploading process, killed with SIGKILL at random
moments and restarted, lose no scan.

The scanner is a small driver calling ``Gate(config).gatekeeper.check`` in a loop and printing
each scan id after ``check`` returns (the moment a real gate would open). The uploader is the
real ``gate upload`` loop. Both run against one SQLite file and the simulator on loopback,
with server errors switched on so uploads are cut off halfway too.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kits.journal import journal_path, open_journal, valid_doc

from scanner.app import Gate
from scanner.config import load_config, toml
from scanner.tickets import Ticket

ROUNDS = 4
SEED = 20301
REPO = Path(__file__).resolve().parent.parent

DRIVER = r"""
import random, sys
from scanner.app import Gate
from scanner.config import load_config
from scanner.decide.model import Direction

codes = open(sys.argv[1]).read().split()
rng = random.Random(int(sys.argv[2]))
with Gate(load_config()) as gate:
    # "ready" only once a check has run: the first one pays for the imports and connections,
    # and the kills that follow must land among scans, not before the first.
    first = gate.gatekeeper.check(rng.choice(codes), rng.choice(list(Direction)))
    print("ready", flush=True)
    print(first.scan_id, flush=True)
    while True:
        result = gate.gatekeeper.check(rng.choice(codes), rng.choice(list(Direction)))
        print(result.scan_id, flush=True)
"""


@pytest.fixture
def gate_env(tmp_path: Path, sim_server) -> dict[str, str]:
    event = sim_server.world.event_ids[0]
    config = tmp_path / "gate.toml"
    config.write_text(toml.dumps({
        "gate_id": "crash-1", "db": str(tmp_path / "gate.db"), "events": [event],
        "api": {"url": sim_server.url, "connect_timeout": 1.0, "read_timeout": 2.0,
                "retries": 1},
        "lookup": {"deadline_ms": 0}, "upload": {"batch_size": 7, "interval": 0.05},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env |= {"GATE_CONFIG": str(config), "GATE_API_TOKEN": sim_server.token}
    return env


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def first_line(proc: subprocess.Popen[str]) -> str:
    """The child's first line, read a byte at a time from the pipe: a buffered readline
    could take part of the next line too, which ``communicate`` would then never see."""
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n") and (byte := os.read(proc.stdout.fileno(), 1)):
        line += byte
    return line.decode()


def kill(proc: subprocess.Popen[str]) -> str:
    """SIGKILL and collect what it printed."""
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    return out


@pytest.mark.slow
def test_no_scan_is_lost_across_sigkills(tmp_path: Path, gate_env, sim_server):
    world = sim_server.world
    event = world.event_ids[0]
    config = load_config(env=gate_env)
    docs = [doc for doc in world.current_tickets(event)][:40]
    with Gate(config) as gate:
        gate.store.upsert([Ticket.from_api(doc) for doc in docs])
    codes = tmp_path / "codes.txt"
    # Tickets, one known valid one, an unknown barcode and a short read.
    codes.write_text("\n".join([d["barcode"] for d in docs]
                               + [valid_doc(world, event)["barcode"], "NOT-A-TICKET-1",
                                  "SHORT"]))
    sim_server.faults.update(error_rate=0.3)
    rng = random.Random(SEED)
    printed: list[str] = []
    for round_no in range(ROUNDS):
        scanner = spawn([sys.executable, "-c", DRIVER, str(codes), str(SEED + round_no)],
                        gate_env)
        uploader = spawn([sys.executable, "-m", "scanner.cli.main", "upload"], gate_env)
        assert first_line(scanner) == "ready\n"
        outputs = {}
        for proc in rng.sample([scanner, uploader], 2):  # killed in a random order
            time.sleep(rng.uniform(0.1, 0.6))
            outputs[proc] = kill(proc)
        # print writes the id and its newline in one call: a line cut short by the kill
        # was never printed whole, so only whole lines count as "check returned".
        printed += [line for line in outputs[scanner].splitlines(keepends=True)
                    if line.endswith("\n")]
    printed_ids = [line.strip() for line in printed]
    assert len(printed_ids) > ROUNDS * 5, "the driver hardly scanned; the test proves nothing"

    with open_journal(journal_path(config)) as journal:
        entries = list(journal.entries())
    journaled = {e["scan_id"] for e in entries}
    missing = [scan_id for scan_id in printed_ids if scan_id not in journaled]
    assert missing == [], f"scans lost by a kill: {missing[:5]}"

    # Finally the uploader runs to the end: every uploadable scan reaches the server.
    sim_server.faults.update(error_rate=0)
    final = subprocess.run([sys.executable, "-m", "scanner.cli.main", "upload", "--once"],
                           env=gate_env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    with open_journal(journal_path(config)) as journal:
        entries = list(journal.entries())
    uploadable = [e for e in entries if e["upload_state"] != "local"]
    assert {e["upload_state"] for e in uploadable} == {"sent"}
    on_server = Counter((s["eventId"], s["barcode"], s["scanned_at"], s["direction"], s["type"])
                        for s in world.scans)
    not_uploaded = [e["scan_id"] for e in uploadable
                    if on_server[(e["event_id"], e["barcode"], e["scanned_at"], e["direction"],
                                  e["result"])] == 0]
    assert not_uploaded == []
