"""The ticket as the gate knows it, and its mapping to and from vivenu's JSON.

Field names follow vivenu's v2 ticket list. Timestamps are kept as normalized ISO-8601 UTC
strings with milliseconds (``2030-01-23T23:00:00.123Z``) so they compare correctly as text,
which lets SQLite order and filter them without parsing.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple


class TicketStatus(StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    DETAILSREQUIRED = "DETAILSREQUIRED"
    RESERVED = "RESERVED"
    BLANK = "BLANK"


REQUIRED_FIELDS = ("_id", "barcode", "ticketTypeId", "ticketName", "eventId", "sellerId",
                   "createdAt", "updatedAt")
# Without these a ticket cannot be stored or merged at all: a document lacking one is a
# server fault that rejects its page.
IDENTITY_FIELDS = ("_id", "barcode", "eventId", "updatedAt")
# The status stored for a ticket whose fields break the API's types: ``decide`` admits
# only VALID (and DETAILSREQUIRED), so such a ticket is denied as TICKET_INVALID.
MALFORMED = "MALFORMED"
STATUSES = frozenset(TicketStatus)
# vivenu's schema: barcodes have at least 8 characters.
MIN_BARCODE = 8

# Optional text fields: API name -> attribute name, in the order from_api unpacks them.
_OPTIONAL_TEXT = {
    "name": "name",
    "priceCategoryId": "price_category_id",
    "categoryRef": "category_ref",
    "parentEventId": "parent_event_id",
    "area": "area",
    "row": "row",
    "seat": "seat",
    "discountId": "discount_id",
    "discount": "discount",
    # Not in vivenu's public schema: a timeslot start some events carry. The gate checks
    # timeslot windows only when a ticket has one.
    "slotStartTime": "slot_start",
}
_OPTIONAL_KEYS = tuple(_OPTIONAL_TEXT)
# The API's names of Ticket's fields, in Ticket's (and the table's) order.
_API_KEYS = ("_id", "barcode", "eventId", "status", "ticketTypeId", "ticketName", "sellerId",
             "createdAt", "updatedAt", "name", "priceCategoryId", "categoryRef",
             "parentEventId", "priceCategory", "area", "row", "seat", "discountId",
             "discount", "entry", "slotStartTime")
_TEXT_OR_NONE = frozenset({str, type(None)})
_TEXT = frozenset({str})
_optional_text = operator.itemgetter(*(_API_KEYS.index(key) for key in _OPTIONAL_KEYS))


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds and a ``Z``."""
    m = moment.astimezone(UTC)
    # Fields, not strftime: %Y does not pad years before 1000 on glibc (the stored form must
    # sort and parse), and strftime costs several times more on a path every record takes.
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond // 1000:03d}Z")


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 timestamp; a naive one is taken as UTC. Raises ValueError."""
    return as_utc(datetime.fromisoformat(
        text.replace("Z", "+00:00") if text.endswith("Z") else text))


def as_utc(moment: datetime) -> datetime:
    """``moment`` made aware: naive means UTC, never the host's zone (which would be I/O);
    an aware one is returned as it is."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def normalize_iso(text: str) -> str:
    """Normalize any ISO-8601 timestamp to the canonical stored form."""
    # Fast path: vivenu already sends the canonical form; parsing a million of them on a
    # full sync would cost seconds.
    if len(text) == 24 and text[23] == "Z" and text[10] == "T" and text[19] == ".":
        return text
    try:
        return utc_iso(parse_iso(text))
    except OverflowError:  # 0001-01-01T00:00+01:00 is valid text but no UTC moment
        raise ValueError(f"outside the calendar in UTC: {text[:40]!r}") from None


class Ticket(NamedTuple):
    """One ticket. A NamedTuple rather than a frozen dataclass: a full sync builds a million
    of them, and tuple construction is several times cheaper than a frozen ``__init__``."""

    id: str
    barcode: str
    event_id: str
    status: str
    ticket_type_id: str
    ticket_name: str
    seller_id: str
    created_at: str
    updated_at: str
    name: str | None = None
    price_category_id: str | None = None
    category_ref: str | None = None
    parent_event_id: str | None = None
    price_category: dict[str, str] | None = None
    area: str | None = None
    row: str | None = None
    seat: str | None = None
    discount_id: str | None = None
    discount: str | None = None
    entry: tuple[str, ...] = ()
    slot_start: str | None = None

    @classmethod
    def from_api(cls, doc: Any) -> Ticket:
        """Build from one vivenu ticket object (see ``parse_ticket``)."""
        return parse_ticket(doc)[0]

    def to_api(self) -> dict[str, Any]:
        """vivenu's JSON shape; absent optional fields are omitted."""
        doc: dict[str, Any] = {
            "_id": self.id,
            "barcode": self.barcode,
            "eventId": self.event_id,
            "status": self.status,
            "ticketTypeId": self.ticket_type_id,
            "ticketName": self.ticket_name,
            "sellerId": self.seller_id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        for api_name, attr in _OPTIONAL_TEXT.items():
            value = getattr(self, attr)
            if value is not None:
                doc[api_name] = value
        if self.price_category is not None:
            doc["priceCategory"] = self.price_category
        if self.entry:
            doc["entry"] = list(self.entry)
        return doc


def parse_ticket(doc: Any) -> tuple[Ticket, str | None]:
    """One vivenu ticket object as a Ticket, checked against the API's types and statuses.

    Returns the ticket and None, or, when a field is of the wrong type or an unknown value,
    a ticket stored as not admissible (status ``MALFORMED``, the bad fields blanked) and a
    line naming the ticket and the fields. A document without a usable ``_id``, ``barcode``,
    ``eventId`` or ``updatedAt`` cannot be stored: ValueError naming the ticket and field.
    An absent ``status`` is VALID, the schema's default.
    """
    values = admissible_values(doc)
    if values is None:
        return malformed_ticket(doc)
    entry = values[19]
    values[19] = tuple(entry) if entry else ()
    return Ticket._make(values), None


def admissible_values(doc: Any) -> list[Any] | None:
    """The checks of ``parse_ticket``: the document's values in Ticket's order, timestamps
    normalized, ``entry`` still the document's list (or None); None when the ticket is not
    admissible (``malformed_ticket`` says why). ValueError as ``parse_ticket``. The sync
    builds its rows from these values directly, with no Ticket in between."""
    if type(doc) is not dict:
        raise ValueError(f"ticket is a {type(doc).__name__}, not an object")
    values = list(map(doc.get, _API_KEYS))  # in column order
    ticket_id, barcode, event_id, status, type_id, type_name, seller, created, updated = (
        values[:9])
    # One chained test per group of fields: a million tickets pass through here.
    if not (str is type(ticket_id) is type(barcode) is type(event_id) is type(updated)
            and ticket_id and barcode and event_id):
        raise ValueError(_identity_fault(doc))
    # normalize_iso's fast path, inline: two calls per ticket cost more than the test.
    if not (len(updated) == 24 and updated[23] == "Z" and updated[10] == "T"
            and updated[19] == "."):
        try:
            values[8] = normalize_iso(updated)
        except ValueError:
            raise ValueError(f"ticket {ticket_id!r}: updatedAt: not an ISO timestamp: "
                             f"{_show(updated)}") from None
    if status is None and "status" not in doc:
        status = values[3] = "VALID"  # the schema's default
    if not (str is type(status) is type(type_id) is type(type_name) is type(seller)
            is type(created) and status in STATUSES
            and _TEXT_OR_NONE.issuperset(map(type, _optional_text(values)))
            and len(barcode) >= MIN_BARCODE):
        return None
    entry, price_category = values[19], values[13]
    if not ((entry is None or _text_list(entry))
            and (price_category is None or _text_object(price_category))):
        return None
    try:
        if not (len(created) == 24 and created[23] == "Z" and created[10] == "T"
                and created[19] == "."):
            values[7] = normalize_iso(created)
        if values[20] is not None:
            values[20] = normalize_iso(values[20])
    except ValueError:
        return None  # a malformed timestamp: malformed_ticket names it
    return values


def malformed_ticket(doc: dict[str, Any]) -> tuple[Ticket, str]:
    """The slow path of ``parse_ticket``, for a document ``admissible_values`` refused:
    every bad field named, the ticket not admissible."""
    return _malformed(doc, doc["_id"], doc["barcode"], doc["eventId"],
                      normalize_iso(doc["updatedAt"]))


def _malformed(doc: dict[str, Any], ticket_id: str, barcode: str, event_id: str,
               updated: str) -> tuple[Ticket, str]:
    """The slow path of ``parse_ticket``: every bad field named, the ticket not admissible."""
    problems: list[str] = []

    def text(key: str, *, required: bool, timestamp: bool = False) -> str | None:
        value = doc.get(key)
        if value is None and not required:
            return None
        if type(value) is str:
            if not timestamp:
                return value
            try:
                return normalize_iso(value)
            except ValueError:
                problems.append(f"{key}: not an ISO timestamp: {_show(value)}")
                return None
        problems.append(f"{key}: expected a string, got {_show(value)}" if key in doc
                        else f"{key}: missing")
        return None

    status = doc.get("status", "VALID")
    if not (type(status) is str and status in STATUSES):
        problems.append(f"status: expected one of {', '.join(TicketStatus)}, got "
                        f"{_show(status)}" if "status" in doc else "status: missing")
    if len(barcode) < MIN_BARCODE:
        problems.append(f"barcode: shorter than {MIN_BARCODE} characters")
    required = {key: text(key, required=True) for key in
                ("ticketTypeId", "ticketName", "sellerId")}
    created = text("createdAt", required=True, timestamp=True)
    optional = {attr: text(key, required=False, timestamp=key == "slotStartTime")
                for key, attr in _OPTIONAL_TEXT.items()}
    entry = doc.get("entry")
    if entry is not None and not _text_list(entry):
        problems.append(f"entry: expected a list of strings, got {_show(entry)}")
        entry = None
    price_category = doc.get("priceCategory")
    if price_category is not None and not _text_object(price_category):
        problems.append(f"priceCategory: expected an object of strings, got "
                        f"{_show(price_category)}")
        price_category = None
    ticket = Ticket(ticket_id, barcode, event_id, MALFORMED,
                    required["ticketTypeId"] or "", required["ticketName"] or "",
                    required["sellerId"] or "", created or updated, updated,
                    price_category=price_category, entry=tuple(entry) if entry else (),
                    **optional)
    return ticket, f"ticket {ticket_id!r}: {'; '.join(problems)}"


def _text_list(value: Any) -> bool:
    """The schema's ``entry``: a list of strings."""
    # map(type, ...) into a set test runs in C; a generator would cost a frame per item.
    return type(value) is list and _TEXT.issuperset(map(type, value))


def _text_object(value: Any) -> bool:
    """The schema's ``priceCategory``: an object of strings."""
    return type(value) is dict and _TEXT.issuperset(map(type, value.values()))


def _identity_fault(doc: dict[str, Any]) -> str:
    ticket_id = doc.get("_id")
    who = f"ticket {ticket_id!r}" if type(ticket_id) is str and ticket_id else "a ticket"
    for key in IDENTITY_FIELDS:
        value = doc.get(key)
        if key not in doc:
            return f"{who}: {key}: missing"
        if type(value) is not str or not value:
            return f"{who}: {key}: expected a non-empty string, got {_show(value)}"
    return f"{who}: malformed"  # unreachable: parse_ticket found a fault


def _show(value: Any) -> str:
    """A value from the server for an error line: its type and a short repr."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
