"""The ticket model: vivenu JSON in and out, and clear errors for malformed documents."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.store.upsert import data_row, stored_row
from scanner.tickets import MALFORMED, Ticket, normalize_iso, parse_ticket

DOC: dict[str, Any] = {
    "_id": "t1", "barcode": "ABCD1234", "ticketTypeId": "tt", "ticketName": "GA",
    "eventId": "e1", "sellerId": "s1", "createdAt": "2030-01-23T23:00:00.123Z",
    "updatedAt": "2030-01-24T00:00:00.000Z", "status": "DETAILSREQUIRED", "name": "Ada",
    "priceCategory": {"categoryId": "pc", "description": "Cat"}, "area": "A", "row": "1",
    "seat": "2", "discountId": "d", "discount": "Kids", "entry": ["north", "south"],
}


def test_round_trip_keeps_every_field() -> None:
    assert Ticket.from_api(DOC).to_api() == DOC


def test_absent_status_defaults_to_valid() -> None:
    doc = {k: v for k, v in DOC.items() if k != "status"}
    assert Ticket.from_api(doc).status == "VALID"


@pytest.mark.parametrize(("key", "who"), [("_id", "a ticket"), ("barcode", "ticket 't1'"),
                                           ("eventId", "ticket 't1'"),
                                           ("updatedAt", "ticket 't1'")])
def test_a_ticket_without_identity_cannot_be_stored_and_names_field_and_id(
        key: str, who: str) -> None:
    with pytest.raises(ValueError, match=f"{who}: {key}: missing"):
        parse_ticket({k: v for k, v in DOC.items() if k != key})


@pytest.mark.parametrize("value", [12, None, "", ["x"]])
def test_a_barcode_of_the_wrong_type_is_a_fault_naming_it(value: Any) -> None:
    with pytest.raises(ValueError, match="ticket 't1': barcode: expected a non-empty string"):
        parse_ticket(DOC | {"barcode": value})


def test_an_unparseable_updated_at_is_a_fault_naming_it() -> None:
    with pytest.raises(ValueError, match="ticket 't1': updatedAt: not an ISO timestamp"):
        parse_ticket(DOC | {"updatedAt": "yesterday"})


@pytest.mark.parametrize(("key", "value", "named"), [
    ("status", None, "status: expected one of"),
    ("status", "", "status: expected one of"),
    ("status", False, "status: expected one of"),
    ("status", 0, "status: expected one of"),
    ("status", "valid", "status: expected one of"),
    ("status", ["VALID"], "status: expected one of"),
    ("entry", "north", "entry: expected a list of strings"),
    ("entry", [1, 2], "entry: expected a list of strings"),
    ("priceCategory", "cat", "priceCategory: expected an object"),
    ("priceCategory", {"categoryId": 3}, "priceCategory: expected an object"),
    ("seat", 12, "seat: expected a string, got int 12"),
    ("ticketName", None, "ticketName: expected a string"),
    ("createdAt", "soon", "createdAt: not an ISO timestamp"),
    ("slotStartTime", "noon", "slotStartTime: not an ISO timestamp"),
    ("barcode", "SHORT", "barcode: shorter than 8"),
])
def test_a_wrong_field_is_stored_not_admissible_naming_field_and_id(
        key: str, value: Any, named: str) -> None:
    ticket, problem = parse_ticket(DOC | {key: value})
    assert ticket.status == MALFORMED
    assert problem is not None and problem.startswith("ticket 't1': ") and named in problem


def test_a_missing_required_field_is_stored_not_admissible() -> None:
    ticket, problem = parse_ticket({k: v for k, v in DOC.items() if k != "sellerId"})
    assert (ticket.status, problem) == (MALFORMED, "ticket 't1': sellerId: missing")


def test_every_bad_field_is_named_in_one_line() -> None:
    _ticket, problem = parse_ticket(DOC | {"status": None, "seat": 1})
    assert problem is not None and "status:" in problem and "seat:" in problem


def test_a_well_formed_ticket_has_no_problem() -> None:
    assert parse_ticket(DOC)[1] is None


def test_non_object_is_refused() -> None:
    with pytest.raises(ValueError, match="not an object"):
        Ticket.from_api(["t1"])


@pytest.mark.parametrize(("raw", "canonical"), [
    ("2030-01-23T23:00:00.123Z", "2030-01-23T23:00:00.123Z"),
    ("2030-01-23T23:00:00Z", "2030-01-23T23:00:00.000Z"),
    ("2030-01-24T01:00:00.5+02:00", "2030-01-23T23:00:00.500Z"),
    ("2030-01-23T23:00:00", "2030-01-23T23:00:00.000Z"),
])
def test_timestamps_are_normalized_so_they_sort_as_text(raw: str, canonical: str) -> None:
    assert normalize_iso(raw) == canonical


def test_the_syncs_store_row_of_a_full_ticket_encodes_its_json_fields() -> None:
    row, problem = stored_row(DOC)
    assert problem is None and row == data_row(Ticket.from_api(DOC))
    assert row[13] == '{"categoryId":"pc","description":"Cat"}' and row[19] == '["north","south"]'


def test_normalize_iso_pads_years_before_1000() -> None:
    """``gate journal --since 0001-01-01`` used to end in a fromisoformat traceback."""
    assert normalize_iso("0001-01-01") == "0001-01-01T00:00:00.000Z"


def test_normalize_iso_refuses_a_moment_outside_the_calendar_in_utc() -> None:
    with pytest.raises(ValueError, match="outside the calendar"):
        normalize_iso("0001-01-01T00:00:00+01:00")
