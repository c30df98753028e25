"""Deterministic base tickets: ticket ``i`` of an event is a pure function of (seed, event, i).

Nothing is stored per base ticket, which is how one event can hold a million tickets.
Barcodes come from a 64-bit bijective mix of (event, i), so they are unique, look random,
and can be turned back into (event, i) for a lookup without an index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

MASK64 = (1 << 64) - 1
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_M1_INV, _M2_INV = pow(_M1, -1, 1 << 64), pow(_M2, -1, 1 << 64)
# Event and ticket index share one 64-bit key: 40 bits of index allow 10^12 tickets.
INDEX_BITS = 40
# Other ids mix a tag into the top byte, which ticket keys (event index < 2^16) never
# reach, so no event, seller or user id can equal a barcode.
TAG_EVENT, TAG_SELLER, TAG_USER = 0xE1 << 56, 0x5E << 56, 0xA0 << 56

# Base tickets were all created before the simulator starts, one every STEP_MS.
DEFAULT_EPOCH_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
DEFAULT_STEP_MS = 250
DEFAULT_SLOT_BASE_MS = int(datetime(2026, 6, 1, 16, tzinfo=UTC).timestamp() * 1000)
SLOT_MINUTES = 30
SLOT_COUNT = 8

FIRST = ("Anna", "Ben", "Chloé", "David", "Emre", "Fatima", "Georg", "Hana", "Ivan", "Julia",
         "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya")
LAST = ("Müller", "Schmidt", "Nguyen", "Kowalski", "García", "Okafor", "Rossi", "Berg",
        "Yilmaz", "Dubois", "Smith", "Tanaka")
PRICE_CATEGORIES = (("pc-1", "Category 1"), ("pc-2", "Category 2"), ("pc-3", "Category 3"))


def mix(x: int) -> int:
    """splitmix64's finalizer: a bijection on 64-bit integers."""
    x = ((x ^ (x >> 30)) * _M1) & MASK64
    x = ((x ^ (x >> 27)) * _M2) & MASK64
    return x ^ (x >> 31)


def _unshift(y: int, shift: int) -> int:
    x = y
    for _ in range(64 // shift + 1):
        x = y ^ (x >> shift)
    return x


def unmix(y: int) -> int:
    """The inverse of ``mix``."""
    x = _unshift(y, 31)
    x = _unshift((x * _M2_INV) & MASK64, 27)
    return _unshift((x * _M1_INV) & MASK64, 30)


@lru_cache(maxsize=8192)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as vivenu's timestamp text; cached per second because a page of
    base tickets shares few seconds and datetime formatting dominates otherwise."""
    return f"{_second_text(ms // 1000)}.{ms % 1000:03d}Z"


@dataclass(frozen=True)
class TicketType:
    id: str
    name: str
    seated: bool = False
    timeslot: bool = False
    entry: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventSpec:
    """Everything needed to render any base ticket of one event."""

    index: int
    id: str
    name: str
    seller_id: str
    salt: int
    types: tuple[TicketType, ...]
    epoch_ms: int
    step_ms: int
    slot_base_ms: int

    def created_ms(self, i: int) -> int:
        return self.epoch_ms + i * self.step_ms

    def barcode(self, i: int) -> str:
        return f"{mix(((self.index << INDEX_BITS) | i) ^ self.salt):016X}"

    def ticket_id(self, i: int) -> str:
        # Mongo-like 24 hex digits; unique per (event, i).
        return f"{self.salt & 0xFFFF:04x}{self.index:04x}{i:016x}"

    def render(self, i: int, created_ms: int | None = None) -> dict[str, Any]:
        """Base ticket ``i``; ``created_ms`` overrides the timestamp (a ticket sold now)."""
        code = self.barcode(i)
        h = mix(int(code, 16) ^ 0x5EED)
        ms = self.created_ms(i) if created_ms is None else created_ms
        stamp = iso_ms(ms)
        kind = self.types[(h >> 8) % len(self.types)]
        roll = h % 100
        doc: dict[str, Any] = {
            "_id": self.ticket_id(i),
            "barcode": code,
            "ticketTypeId": kind.id,
            "ticketName": kind.name,
            "eventId": self.id,
            "sellerId": self.seller_id,
            "createdAt": stamp,
            "updatedAt": stamp,
            # A ticket sold while the simulator runs is valid; base ones vary.
            "status": "VALID" if created_ms is not None or roll >= 10
            else "INVALID" if roll < 6 else "DETAILSREQUIRED",
        }
        if (h >> 32) % 10:
            doc["name"] = f"{FIRST[(h >> 16) % len(FIRST)]} {LAST[(h >> 24) % len(LAST)]}"
        if kind.seated:
            category_id, description = PRICE_CATEGORIES[(h >> 36) % len(PRICE_CATEGORIES)]
            doc["priceCategoryId"] = category_id
            doc["priceCategory"] = {"categoryId": category_id, "description": description}
            doc["area"] = f"Block {'ABCDEF'[(h >> 40) % 6]}"
            doc["row"] = str(1 + (h >> 44) % 30)
            doc["seat"] = str(1 + (h >> 50) % 40)
        if (h >> 56) % 20 == 0:
            doc["discountId"] = "dsc-student"
            doc["discount"] = "Student"
        if kind.entry:
            doc["entry"] = list(kind.entry)
        if kind.timeslot:
            slot = (h >> 20) % SLOT_COUNT
            doc["slotStartTime"] = iso_ms(self.slot_base_ms + slot * SLOT_MINUTES * 60_000)
        return doc


def event_spec(seed: int, index: int, *, seller_id: str, epoch_ms: int = DEFAULT_EPOCH_MS,
               step_ms: int = DEFAULT_STEP_MS,
               slot_base_ms: int = DEFAULT_SLOT_BASE_MS) -> EventSpec:
    """Event ``index`` of the world seeded ``seed``: id, name and ticket types.

    Only the first event sells timeslot tickets, so a gate can be tested both with and
    without timeslot rules.
    """
    salt = mix(seed & MASK64)
    tag = f"{mix(salt ^ TAG_EVENT ^ index):016x}"
    types = [
        TicketType(f"tt-{tag[:8]}-ga", "General Admission", entry=("ent-main",)),
        TicketType(f"tt-{tag[:8]}-vip", "VIP", entry=("ent-main", "ent-vip")),
        TicketType(f"tt-{tag[:8]}-red", "Reduced"),
        TicketType(f"tt-{tag[:8]}-seat", "Seated Tribune", seated=True,
                   entry=("ent-tribune",)),
    ]
    if index == 0:
        types.append(TicketType(f"tt-{tag[:8]}-slot", "Timeslot Entry", timeslot=True))
    return EventSpec(index=index, id=f"evt-{tag}", name=f"Simulated Festival {index + 1}",
                     seller_id=seller_id, salt=salt, types=tuple(types),
                     epoch_ms=epoch_ms + index, step_ms=step_ms, slot_base_ms=slot_base_ms)


def locate(barcode: str, salt: int) -> tuple[int, int] | None:
    """(event index, ticket index) a generated barcode encodes, or None if it is not one."""
    if len(barcode) != 16:
        return None
    try:
        value = int(barcode, 16)
    except ValueError:
        return None
    key = unmix(value) ^ salt
    return key >> INDEX_BITS, key & ((1 << INDEX_BITS) - 1)
