"""The ticket model: vivenu JSON in and out, and clear errors for malformed documents."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.tickets import Ticket, normalize_iso

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


def test_missing_required_fields_are_named() -> None:
    doc = {k: v for k, v in DOC.items() if k not in ("barcode", "sellerId")}
    with pytest.raises(ValueError, match="lacks barcode, sellerId"):
        Ticket.from_api(doc)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("entry", "north", "malformed entry"),
    ("entry", [1, 2], "malformed entry"),
    ("priceCategory", "cat", "malformed priceCategory"),
    ("seat", 12, "non-text seat"),
    ("updatedAt", "yesterday", "Invalid isoformat"),
])
def test_malformed_fields_are_refused(key: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Ticket.from_api(DOC | {key: value})


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
