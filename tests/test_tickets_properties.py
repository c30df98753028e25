"""Property: whatever a server sends as a ticket, only a status of exactly "VALID" (or none,
the schema's default) can end in a grant, through the same parse and rules as a real scan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.decide import Direction, Policy, ScanHistory, decide
from scanner.store.upsert import data_row, stored_row
from scanner.tickets import parse_ticket

NOW = datetime(2030, 1, 23, 18, 0, tzinfo=UTC)
STAMP = "2030-01-01T00:00:00.000Z"
FIELDS = ("_id", "barcode", "eventId", "status", "ticketTypeId", "ticketName", "sellerId",
          "createdAt", "updatedAt", "name", "seat", "entry", "priceCategory",
          "slotStartTime", "parentEventId")

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["VALID", "INVALID", "valid",
                                                           "VALID ", "DETAILSREQUIRED",
                                                           "RESERVED", "BLANK", STAMP]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)
# A well-formed ticket with any subset of fields replaced by any value or removed.
good: dict[str, Any] = {"_id": "t1", "barcode": "ABCD1234", "eventId": "ev1",
                        "status": "VALID", "ticketTypeId": "tt", "ticketName": "GA",
                        "sellerId": "s1", "createdAt": STAMP, "updatedAt": STAMP}
changes = st.dictionaries(st.sampled_from(FIELDS), st.one_of(values, st.just(...)),
                          max_size=6)


def document(edits: dict[str, Any]) -> dict[str, Any]:
    doc = dict(good)
    for key, value in edits.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(changes, st.sampled_from(Direction))
def test_only_an_exact_valid_status_is_ever_granted(edits: dict[str, Any],
                                                    direction: Direction) -> None:
    doc = document(edits)
    try:
        ticket, _problem = parse_ticket(doc)
    except ValueError:
        return  # refused whole: nothing stored, nothing granted
    decision = decide(ticket, ScanHistory(), Policy(), direction, NOW, barcode=ticket.barcode)
    if decision.granted:
        assert doc.get("status", "VALID") == "VALID"
        assert type(doc.get("status", "VALID")) is str


def _outcome(parse: Any, doc: dict[str, Any]) -> Any:
    try:
        return parse(doc)
    except ValueError as exc:
        return f"refused: {exc}"


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(changes)
def test_the_syncs_store_row_is_the_parsed_tickets_row(edits: dict[str, Any]) -> None:
    # The sync parses pages straight into rows (stored_row): whatever a server sends, the
    # row, the problem line or the refusal must be exactly the ticket path's.
    doc = document(edits)
    via_ticket = _outcome(lambda d: (lambda t, p: (data_row(t), p))(*parse_ticket(d)), doc)
    assert _outcome(stored_row, doc) == via_ticket
