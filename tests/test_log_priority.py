"""Log lines carry their syslog priority (sd-daemon's ``<N>`` prefix) when stderr is the
systemd journal's stream, and only then: a real ``gate`` process, its stderr a file whose
device and inode ``JOURNAL_STREAM`` names, as systemd sets it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli.logs import PriorityFormatter, priority, stderr_is_journal

# A lookup to a port nothing listens on fails at once: one WARNING, then an offline decision.
REFUSED = "http://127.0.0.1:9"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def gate_stderr(tmp_path: Path, *args: str, journal_stream: str | None = "this file",
                **env: str) -> list[str]:
    """The stderr lines of ``gate ARGS``; ``journal_stream``: "this file" (the stream is the
    journal), another value as given, or None (not under systemd)."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("GATE_") and k != "JOURNAL_STREAM"}
    environ.update({"GATE_DB": str(tmp_path / "gate.db"), "GATE_ID": "g1",
                    "GATE_API_URL": REFUSED, "GATE_API_TOKEN": "test-token", **env})
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        if journal_stream == "this file":
            info = os.fstat(stderr.fileno())
            journal_stream = f"{info.st_dev}:{info.st_ino}"
        if journal_stream is not None:
            environ["JOURNAL_STREAM"] = journal_stream
        subprocess.run([sys.executable, "-m", "scanner.cli.main", *args], env=environ,
                       stdout=subprocess.DEVNULL, stderr=stderr, timeout=60, check=False)
    return log.read_text().splitlines()


def lookup_warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if "online lookup failed" in line]


def test_a_warning_reaches_the_journal_at_priority_4(tmp_path: Path) -> None:
    lines = gate_stderr(tmp_path, "check", "ABCDEFGH1234")
    [warning] = lookup_warnings(lines)
    assert warning.startswith("<4>WARNING scanner.gatekeeper: online lookup failed")
    assert all(re.match(r"<[2-7]>", line) for line in lines)


def test_without_the_journal_lines_are_plain(tmp_path: Path) -> None:
    [warning] = lookup_warnings(gate_stderr(tmp_path, "check", "ABCDEFGH1234",
                                            journal_stream=None))
    assert TIMESTAMP.match(warning) and "<4>" not in warning


def test_a_journal_stream_that_is_not_stderr_gets_plain_lines(tmp_path: Path) -> None:
    # A child whose stderr was redirected inherits the variable, not the stream.
    [warning] = lookup_warnings(gate_stderr(tmp_path, "check", "ABCDEFGH1234",
                                            journal_stream="12:34"))
    assert TIMESTAMP.match(warning)


def test_a_gate_that_cannot_start_says_why_at_error_priority(tmp_path: Path) -> None:
    lines = gate_stderr(tmp_path, "run", GATE_CONFIG=str(tmp_path / "missing.toml"))
    assert lines == [f"<3>gate: configuration error: GATE_CONFIG: no such file: "
                     f"{tmp_path / 'missing.toml'}"]


@pytest.mark.parametrize(("level", "expected"), [
    (logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6),
    (logging.DEBUG, 7), (logging.WARNING + 5, 4), (logging.NOTSET, 7)])
def test_levels_map_to_syslog_priorities(level: int, expected: int) -> None:
    assert priority(level) == expected


def test_every_line_of_a_record_carries_the_priority() -> None:
    record = logging.LogRecord("scanner.run", logging.ERROR, __file__, 1,
                               "reader died\nsecond line", None, None)
    assert PriorityFormatter("%(message)s").format(record) == "<3>reader died\n<3>second line"


def test_stderr_is_the_journal_only_when_device_and_inode_match(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as handle:
        info = os.fstat(handle.fileno())
        here = f"{info.st_dev}:{info.st_ino}"
        assert stderr_is_journal({"JOURNAL_STREAM": here}, handle.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"},
                                     handle.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, handle.fileno())
        assert not stderr_is_journal({}, handle.fileno())
