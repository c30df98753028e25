"""Output that shows journaled or server text escapes control and bidi characters
(terminal injection): the one helper, and every command that prints such text."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import pytest
from kits.gate import build_gate
from kits.journal import EVENT, make_decision
from test_gatekeeper_cli import gate_env, run  # noqa: F401  (the fixture)

from scanner.app import Gate
from scanner.journal.ids import new_scan_id
from scanner.printable import escape, unreadable_form

# Characters a terminal acts on or that reorder what is shown.
HOSTILE = ["\x1b", "\x07", "\x00", "\r", "\n", "\t", "\x7f", "\x9b", "\x85", "\u202a",
           "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
           "\u200e", "\u200f", "\u061c", "\u2028", "\udcff", "\U000e0001"]
# What an attacker would put in a barcode or a ticket name.
INJECTION = "VIP\x1b[2J\x1b]0;owned\x07\u202eEVIL"


@pytest.mark.parametrize("char", HOSTILE, ids=[f"U+{ord(c):04X}" for c in HOSTILE])
def test_escape_writes_each_hostile_character_as_an_escape(char: str) -> None:
    shown = escape(f"A{char}B")
    assert shown.isprintable() and char not in shown
    assert codecs.decode(shown, "unicode_escape") == f"A{char}B"  # a Python escape of it


def test_escape_leaves_printable_text_of_any_script_alone() -> None:
    text = "Zoë Ünal 票 ÅÄÖ \\x1b back\\slash"
    assert escape(text) is text


def test_unreadable_form_doubles_backslashes_so_every_escape_is_one() -> None:
    assert unreadable_form("A\\x1b\x1b") == "A\\\\x1b\\x1b"


def test_unreadable_form_keeps_a_bounded_part_and_counts_the_rest() -> None:
    assert unreadable_form("\x00" * 1000, limit=3) == "\\x00\\x00\\x00...(+997 characters)"


def write_raw_row(db_gate: Gate, barcode: str) -> None:
    """A row as a gate before this fix journaled it: the read's characters as they came."""
    db_gate.journal.record(make_decision(None, granted=False, barcode=barcode),
                           scan_id=new_scan_id(), scanned_at="2030-01-01T10:00:00.000Z",
                           latency_ms=0.1, event_id=EVENT)


@pytest.fixture
def hostile_row(gate_env: Path, tmp_path: Path) -> None:  # noqa: F811
    with build_gate(tmp_path) as gate:
        write_raw_row(gate, INJECTION)


def assert_escaped(out: str) -> None:
    assert out.isprintable() or all(line.isprintable() for line in out.splitlines())
    assert escape(INJECTION) in out


def test_journal_text_escapes_what_was_journaled(hostile_row, capsys) -> None:
    _, out, _ = run(capsys, "journal")
    assert_escaped(out)


def test_journal_csv_escapes_every_cell(hostile_row, capsys) -> None:
    _, out, _ = run(capsys, "journal", "--csv")
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["barcode"] == escape(INJECTION) and "\x1b" not in out


def test_check_json_shows_a_malformed_read_escaped(gate_env, capsys) -> None:  # noqa: F811
    # orjson escapes C0 controls itself, but not the bidi overrides.
    code, out, _ = run(capsys, "check", "--json", INJECTION)
    assert code == 1 and "\u202e" not in out and "\x1b" not in out
    assert json.loads(out)["barcode"] == unreadable_form(INJECTION)


def test_status_escapes_an_event_name_from_the_server(gate_env, tmp_path, capsys) -> None:  # noqa: F811
    with build_gate(tmp_path) as gate:
        gate.store.save_events([{"_id": EVENT, "name": INJECTION}])
    _, out, _ = run(capsys, "status")
    assert_escaped(out)
