"""Every presented read is journaled, whatever its bytes, with its reason; ``gate scan``
says and exits 1 when decisions failed. Real CLI processes, bytes on argv and on stdin,
a real SQLite file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kits.gate import write_toml
from kits.journal import make_ticket
from test_outbox_readonly import set_read_only

from scanner.child import gate_argv, gate_env
from scanner.decide.model import Direction, Reason
from scanner.printable import KEPT_READ_CHARS


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # offline: no server in this test
    config = write_toml(tmp_path / "gate.toml", {"lookup": {"deadline_ms": 0}})
    return gate_env(GATE_DB=str(tmp_path / "gate.db"), GATE_CONFIG=str(config))


def gate(env: dict[str, str], *args: str | bytes,
         stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*gate_argv(), *args], env=env, input=stdin, capture_output=True,
                          timeout=60, check=False)


def journal_rows(env: dict[str, str]) -> list[dict[str, object]]:
    done = gate(env, "journal", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow
def test_check_of_a_barcode_that_is_not_utf8_is_journaled_malformed(env):
    done = gate(env, "check", b"AB\xffCD\\EFGH")
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert done.stdout.startswith(b"MALFORMED_READ: ")
    [row] = journal_rows(env)
    assert (row["reason"], row["barcode"], row["upload_state"]) == (
        "MALFORMED_READ", "AB\\udcffCD\\\\EFGH", "local")


def test_scan_journals_each_refused_read_with_its_reason(env):
    too_long = b"X" * 600
    stdin = b"\xff\xfeGARBAGE\nAB\x1b[2JCDEFGH\n\n" + too_long + b"\n\xff\xfeGARBAGE\nVALID-0001\n"
    done = gate(env, "scan", "--source", "stdin", stdin=stdin)
    assert done.returncode == 0, done.stderr
    rows = journal_rows(env)
    assert [(r["reason"], r["upload_state"]) for r in rows] == \
        [("MALFORMED_READ", "local")] * 4 + [("UNKNOWN_BARCODE", "local")]  # dup not again
    assert [str(r["message"]).rsplit("(", 1)[-1] for r in rows[:4]] == [
        "NOT_UTF8)", "CONTROL_CHARS)", "EMPTY)", "TOO_LONG)"]
    assert [r["barcode"] for r in rows[:3]] == ["\\udcff\\udcfeGARBAGE", "AB\\x1b[2JCDEFGH", ""]
    kept, cut = str(rows[3]["barcode"]).split("...")
    assert kept == "X" * KEPT_READ_CHARS and cut.startswith("(+") and len(cut) < 20
    assert done.stderr.decode().splitlines()[-1] == \
        "1 decided, 4 rejected, 1 duplicates, 0 failed"


def test_scan_exits_1_and_counts_the_failures_when_the_journal_is_unwritable(env, tmp_path):
    assert gate(env, "status").returncode == 0  # creates the database
    set_read_only(tmp_path / "gate-journal.db")
    done = gate(env, "scan", "--source", "stdin", stdin=b"UNKNOWN-0001\n\x00\nUNKNOWN-0002\n")
    err = done.stderr.decode()
    assert done.returncode == 1
    assert err.splitlines()[-1] == "0 decided, 1 rejected, 0 duplicates, 3 failed"
    assert "Traceback" not in err and "readonly" in err


def test_a_refused_read_is_never_granted_even_if_its_text_is_a_ticket(tmp_path, make_gate):
    ticket = make_ticket(1)
    with make_gate(tmp_path) as built:
        built.store.upsert([ticket])
        result = built.gatekeeper.check(ticket.barcode, Direction.IN,
                                        refused="cut by the device (TOO_LONG)")
        [row] = built.journal.entries()
    assert (result.decision.granted, result.decision.reason) == (False, Reason.MALFORMED_READ)
    assert (row["message"], row["upload_state"], row["ticket_id"]) == (
        "Unreadable code: cut by the device (TOO_LONG)", "local", None)
