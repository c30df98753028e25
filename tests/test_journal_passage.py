"""The daemon's follow-ups to a grant: when the gate acted, and whether the person passed."""

from __future__ import annotations

from pathlib import Path

import pytest
from kits.journal import EVENT, make_decision, make_ticket, open_journal
from test_journal import put

from scanner.decide.model import Direction
from scanner.journal import Journal

IN, OUT = Direction.IN, Direction.OUT


@pytest.fixture
def journal(tmp_path: Path):
    with open_journal(tmp_path / "gate-journal.db") as j:
        yield j


def _entry(journal: Journal, scan_id: str) -> dict:
    return next(e for e in journal.entries() if e["scan_id"] == scan_id)


def test_a_new_entry_has_no_actuation_and_no_passage_contact(journal: Journal):
    scan_id = put(journal, make_decision(make_ticket()))
    entry = _entry(journal, scan_id)
    assert (entry["actuated_at"], entry["passed"]) == (None, None)


def test_mark_actuated_keeps_the_time_the_gate_acted(journal: Journal):
    scan_id = put(journal, make_decision(make_ticket()))
    assert journal.mark_actuated(scan_id, "2030-01-01T10:00:00.120Z")
    assert _entry(journal, scan_id)["actuated_at"] == "2030-01-01T10:00:00.120Z"


def test_mark_passed_is_kept_as_a_boolean(journal: Journal):
    scan_id = put(journal, make_decision(make_ticket()))
    assert journal.mark_passed(scan_id, True)
    assert _entry(journal, scan_id)["passed"] is True


def test_follow_ups_of_an_unknown_scan_change_nothing(journal: Journal):
    put(journal, make_decision(make_ticket()))
    assert not journal.mark_passed("no-such-scan", False)
    assert not journal.mark_actuated("no-such-scan", "2030-01-01T10:00:00.000Z")
    assert [e["passed"] for e in journal.entries()] == [None]


def test_a_grant_opened_but_not_passed_is_not_inside(journal: Journal):
    scan_id = put(journal, make_decision(make_ticket(), IN))
    journal.mark_passed(scan_id, False)
    assert journal.inside_counts() == {}


def test_a_passed_grant_and_one_without_contact_are_inside(journal: Journal):
    journal.mark_passed(put(journal, make_decision(make_ticket(1), IN)), True)
    put(journal, make_decision(make_ticket(2), IN))
    assert journal.inside_counts() == {EVENT: 2}


def test_a_checkout_not_passed_leaves_the_person_inside(journal: Journal):
    put(journal, make_decision(make_ticket(), IN))
    journal.mark_passed(put(journal, make_decision(make_ticket(), OUT)), False)
    assert journal.inside_counts() == {EVENT: 1}


def test_history_leaves_out_a_grant_not_passed(journal: Journal):
    """So anti-passback lets the visitor who walked away from an open gate try again."""
    journal.mark_passed(put(journal, make_decision(make_ticket(), IN)), False)
    kept = put(journal, make_decision(make_ticket(), IN))
    assert [s.direction for s in journal.history(make_ticket().id).scans] == [IN]
    assert _entry(journal, kept)["passed"] is None
