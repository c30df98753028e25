"""``gate scan``: one line per decision, one per rejected read, through the real gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from kits.gate import write_toml

from scanner.cli.main import cli
from scanner.cli.scan_cmd import decision_line
from scanner.decide.model import Decision, Direction, Feedback, Reason
from scanner.read.hygiene import Payload


def test_decision_line_shows_reason_colour_code_message_and_latency() -> None:
    decision = Decision(True, Reason.GRANTED, "Welcome (VIP)", Feedback.GREEN, Direction.IN,
                        "ABCD1234")
    payload = Payload("ABCD1234", "stdin", None, 0, 0.0, 0)
    line = decision_line(payload, SimpleNamespace(decision=decision, latency_ms=0.214))
    assert line.startswith("GRANTED  green  ABCD1234  Welcome (VIP) 0.21 ms")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # offline: no server in this test
    config = write_toml(tmp_path / "gate.toml", {"lookup": {"deadline_ms": 0}})
    return {"GATE_DB": str(tmp_path / "gate.db"), "GATE_CONFIG": str(config)}


def test_stdin_scan_decides_each_code_and_rejects_garbage(env: dict[str, str]) -> None:
    stdin = b"UNKNOWN-TICKET-1\n\xff\xfe\nUNKNOWN-TICKET-1\nUNKNOWN-TICKET-2\n"
    result = CliRunner().invoke(cli, ["scan", "--source", "stdin"], input=stdin, env=env)
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in lines] == ["UNKNOWN_BARCODE", "REJECTED",
                                                   "UNKNOWN_BARCODE"]
    assert "UNKNOWN-TICKET-2" in lines[2] and "NOT_UTF8" in lines[1]



@pytest.mark.parametrize(("flags", "message"), [
    (["--source", "serial", "--port", "loop://", "--baud", "-1"],
     "reader.baud: expected an integer >= 1, got -1 (set by --baud)"),
    (["--source", "camera", "--width", "0"],
     "reader.width: expected an integer >= 1, got 0 (set by --width)"),
    (["--source", "camera", "--decoder", "tesseract"],
     "reader.decoder: expected one of auto, zxing, pyzbar, got 'tesseract' (set by --decoder)"),
])
def test_an_option_the_configuration_would_refuse_is_refused_naming_the_flag(
        env: dict[str, str], flags: list[str], message: str) -> None:
    """The options bypassed the configuration's rules: --baud -1 was then retried for ever
    as a port that could not open."""
    result = CliRunner().invoke(cli, ["scan", *flags], input=b"", env=env)
    assert str(result.exception) == message


def test_scan_from_an_idle_stdin_stops_cleanly_on_sigterm(env: dict[str, str],
                                                          tmp_path: Path) -> None:
    """The reader's thread waits in stdin's readline when SIGTERM comes: the process used to
    abort at exit ("Fatal Python error: ... could not acquire lock for <stdin>", SIGABRT),
    the interpreter closing sys.stdin while that read held its lock."""
    log = tmp_path / "scan.log"
    read_end, write_end = os.pipe()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "scan", "--source",
                                 "stdin"], env={**os.environ, **env}, stdin=read_end,
                                stdout=out, stderr=subprocess.STDOUT)
    os.close(read_end)
    try:
        os.write(write_end, b"UNKNOWN-TICKET-1\n")
        deadline = time.monotonic() + 30
        while b"UNKNOWN_BARCODE red" not in log.read_bytes():  # decided: now reading again
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        proc.kill()
        os.close(write_end)
    said = log.read_text()
    assert proc.returncode == 0, said
    assert "Fatal Python error" not in said
    assert said.splitlines()[-1] == "1 decided, 0 rejected, 0 duplicates, 0 failed"
