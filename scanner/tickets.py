"""The ticket as the gate knows it, and its mapping to and from vivenu's JSON.

Field names follow vivenu's v2 ticket list. Timestamps are kept as normalized ISO-8601 UTC
strings with milliseconds (``2030-01-23T23:00:00.123Z``) so they compare correctly as text,
which lets SQLite order and filter them without parsing.
"""

from __future__ import annotations

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


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds and a ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
    return utc_iso(parse_iso(text))


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
        """Build from one vivenu ticket object. Raises ValueError naming what is wrong."""
        if type(doc) is not dict:
            raise ValueError(f"ticket is a {type(doc).__name__}, not an object")
        get = doc.get
        required = [get(key) for key in REQUIRED_FIELDS]
        if not all(type(value) is str for value in required):
            missing = [k for k, v in zip(REQUIRED_FIELDS, required, strict=True)
                       if type(v) is not str]
            raise ValueError(f"ticket {get('_id')!r} lacks {', '.join(missing)}")
        optional = [get(key) for key in _OPTIONAL_KEYS]
        for key, value in zip(_OPTIONAL_KEYS, optional, strict=True):
            if value is not None and type(value) is not str:
                raise ValueError(f"ticket {required[0]!r} has a non-text {key}")
        entry = get("entry") or ()
        if type(entry) is not tuple:
            if type(entry) is not list or not all(type(e) is str for e in entry):
                raise ValueError(f"ticket {required[0]!r} has a malformed entry list")
            entry = tuple(entry)
        price_category = get("priceCategory")
        if price_category is not None and type(price_category) is not dict:
            raise ValueError(f"ticket {required[0]!r} has a malformed priceCategory")
        ticket_id, barcode, type_id, type_name, event_id, seller_id, created, updated = required
        (name, price_category_id, category_ref, parent_event_id, area, row, seat,
         discount_id, discount, slot_start) = optional
        return cls(
            ticket_id, barcode, event_id, get("status") or "VALID", type_id, type_name,
            seller_id, normalize_iso(created), normalize_iso(updated), name, price_category_id,
            category_ref, parent_event_id, price_category, area, row, seat, discount_id,
            discount, entry, None if slot_start is None else normalize_iso(slot_start),
        )

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
