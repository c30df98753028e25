"""``gate journal export``: every journal row, or those in a time range, as CSV or JSON lines
that read back to the journal's own rows, through the real CLI entry point."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from kits.gate import build_gate, gate_toml
from kits.journal import make_decision, make_ticket

from scanner.cli.journal_cmds import JOURNAL_COLUMNS
from scanner.cli.main import main
from scanner.decide.model import Direction
from scanner.journal.journal import SUPERVISION_NAMES
from scanner.journal.schema import journal as journal_table

TIMES = [f"2030-01-01T1{h}:00:00.000Z" for h in range(6)]


@pytest.fixture
def cli_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kit gate's folder; its configuration is also the one the CLI loads
    (``GATE_CONFIG``)."""
    toml = gate_toml(tmp_path)
    for name in ("GATE_DB", "GATE_ID", "GATE_JOURNAL_DB", "GATE_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATE_CONFIG", str(toml))
    return tmp_path


@pytest.fixture
def rows(cli_gate: Path) -> list[dict[str, Any]]:
    """A journal with scans an hour apart (granted, denied, actuated, passed or not), as
    ``Journal.entries`` gives them."""
    with build_gate(cli_gate) as gate:
        journal = gate.journal
        for n, at in enumerate(TIMES):
            granted = n % 2 == 0
            decision = make_decision(make_ticket(n), Direction.IN, granted=granted)
            journal.record(decision, scan_id=f"scan-{n}", scanned_at=at, latency_ms=0.25 * n)
            if granted:
                journal.mark_actuated(f"scan-{n}", at)
                journal.mark_passed(f"scan-{n}", n != 2)
        return list(journal.entries())


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    return {column: row[column] for column in JOURNAL_COLUMNS}


def as_csv(row: dict[str, Any]) -> dict[str, str]:
    return {column: "" if row[column] is None else str(row[column])
            for column in JOURNAL_COLUMNS}


def test_the_export_has_every_column_of_the_journal() -> None:
    assert set(JOURNAL_COLUMNS) == {column.name for column in journal_table.columns} \
        | set(SUPERVISION_NAMES)


def test_json_lines_to_a_file_read_back_to_the_journals_rows(
        rows: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "box-office.jsonl"
    code, out, err = run(capsys, "journal", "export", "--json", "-o", str(target))
    assert (code, out, err) == (0, "", f"exported {len(rows)} scan(s) to {target}\n")
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert exported == [as_json(row) for row in rows]
    assert {(r["passed"], r["actuated_at"] is not None) for r in exported} == {
        (True, True), (False, True), (None, False)}


def test_csv_to_stdout_reads_back_to_the_journals_rows(
        rows: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "journal", "export")
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == [as_csv(row) for row in rows]


def test_a_time_range_takes_scans_from_since_until_before_until(
        rows: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "journal", "export", "--json", "--since", TIMES[1],
                    "--until", "2030-01-01T14:00:00+00:00")
    assert [json.loads(line)["scan_id"] for line in out.splitlines()] == \
        ["scan-1", "scan-2", "scan-3"]


def test_the_audit_csv_and_the_export_are_one_format(
        rows: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    _, audit, _ = run(capsys, "journal", "--csv")
    _, export, _ = run(capsys, "journal", "export", "--csv")
    assert audit == export and audit.count("\n") == len(rows) + 1


def test_an_export_that_cannot_be_written_is_one_line_and_leaves_no_file(
        rows: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-folder" / "export.csv"
    code, out, err = run(capsys, "journal", "export", "-o", str(target))
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"gate: error: cannot write {target}: No such file or "
                                f"directory"]


def test_an_export_onto_a_device_or_pipe_is_refused_and_leaves_it_there(
        rows: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The export's rename used to put a regular file in place of what was there: as root,
    ``-o /dev/null`` replaced /dev/null itself (a pipe stands in for it here)."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    code, out, err = run(capsys, "journal", "export", "-o", str(pipe))
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"gate: error: cannot write {pipe}: not a regular file, and "
                                f"never replaced by one"]
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_a_bad_until_is_one_line(rows: list[dict[str, Any]],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "journal", "export", "--until", "tomorrow")
    assert code == 2 and err.strip() == "Error: --until: not an ISO-8601 time: 'tomorrow'"


def test_a_read_a_spreadsheet_would_run_is_exported_as_text(
        cli_gate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "plain-code"]
    with build_gate(cli_gate) as gate:
        for n, barcode in enumerate(hostile):
            decision = make_decision(make_ticket(n, barcode=barcode), Direction.IN,
                                     granted=False)
            gate.journal.record(decision, scan_id=f"s-{n}", scanned_at=TIMES[n],
                               latency_ms=0.0)
    _, out, _ = run(capsys, "journal", "export")
    assert [row["barcode"] for row in csv.DictReader(io.StringIO(out))] == [
        "'" + code for code in hostile[:4]] + ["plain-code"]
