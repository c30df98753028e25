"""``gate demo`` end to end: the real commands as processes against the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_syncs_decides_survives_an_outage_and_uploads(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    proc = subprocess.run([sys.executable, "-m", "scanner.cli.main", "demo", "--tickets", "300",
                           "--dir", str(tmp_path)], env=env, text=True, capture_output=True,
                          timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "full +300 tickets" in out
    assert "delta +" in out
    for reason in ("GRANTED", "ALREADY_INSIDE", "CHECKED_OUT", "TICKET_INVALID",
                   "MALFORMED_READ", "UNKNOWN_BARCODE"):
        assert f"{reason}:" in out, reason
    assert "still pending" in out          # the outage kept scans queued
    assert "Traceback" not in out
    assert "demo-token-not-a-secret" not in out
    received = int(out.rsplit("simulator received ", 1)[1].split()[0])
    assert received >= 6
    assert (tmp_path / "gate.db").exists()
