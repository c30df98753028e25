"""The first sync shows a progress bar to a person at a terminal, and nothing in a log."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

from scanner.sim import SimServer


def sync_env(sim_server: SimServer, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env.update(GATE_API_URL=sim_server.url, GATE_API_TOKEN="sim-token", GATE_DB=str(db))
    return env


def test_a_terminal_gets_a_progress_bar(sim_server: SimServer, tmp_path: Path) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "sync", "--once"],
                            env=sync_env(sim_server, tmp_path / "g.db"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "tickets/s" in screen and "sync evt-" in screen


def test_a_log_gets_one_line_per_event_and_no_bar(sim_server: SimServer, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "scanner.cli.main", "sync", "--once"],
                          env=sync_env(sim_server, tmp_path / "g.db"), text=True,
                          capture_output=True, timeout=60, check=True)
    assert "tickets/s" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "scanner.sync: sync evt-" in line]
    assert len(lines) == len(sim_server.world.event_ids)
