"""The yardstick of ``gate bench sync``: the plainest loop that pages an event's tickets
into SQLite, with nothing of the gate's (no shift-safe pager, no validation, no cursor).

    python -m scanner.bench.plain_sync URL EVENT_ID DB_PATH PAGE_SIZE
    (token: $PLAIN_TOKEN; read timeout in seconds: $PLAIN_READ_TIMEOUT, the gate's
    default, both set by ``scanner.bench.sync_runs``)

It imports only httpx, json and sqlite3, writes the same columns and indexes the gate's
ticket table has and the seen mark of every ticket (``full_seen``, as the gate's full sync
marks what it lists for the sweep), commits once per page in WAL mode with the gate's
store's synchronous level, and prints the number of tickets written. Its CPU is what the
gate must beat.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from typing import Any

import httpx

FIELDS = ("_id", "barcode", "eventId", "status", "ticketTypeId", "ticketName", "sellerId",
          "createdAt", "updatedAt", "name", "priceCategoryId", "categoryRef",
          "parentEventId", "priceCategory", "area", "row", "seat", "discountId", "discount",
          "entry", "slotStartTime")
# The gate's ticket table (scanner.store.schema.tickets), written out by hand.
DDL = """
CREATE TABLE IF NOT EXISTS tickets (
    id VARCHAR PRIMARY KEY, barcode VARCHAR NOT NULL, event_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL, ticket_type_id VARCHAR NOT NULL, ticket_name VARCHAR NOT NULL,
    seller_id VARCHAR NOT NULL, created_at VARCHAR NOT NULL, updated_at VARCHAR NOT NULL,
    name VARCHAR, price_category_id VARCHAR, category_ref VARCHAR, parent_event_id VARCHAR,
    price_category TEXT, area VARCHAR, "row" VARCHAR, seat VARCHAR, discount_id VARCHAR,
    discount VARCHAR, entry TEXT, slot_start VARCHAR);
CREATE INDEX IF NOT EXISTS ix_tickets_barcode ON tickets (barcode);
CREATE INDEX IF NOT EXISTS ix_tickets_event ON tickets (event_id, id);
CREATE TABLE IF NOT EXISTS full_seen (
    event_id VARCHAR NOT NULL, id VARCHAR NOT NULL, PRIMARY KEY (event_id, id))
    WITHOUT ROWID;
"""
INSERT = f"INSERT OR REPLACE INTO tickets VALUES ({', '.join('?' * len(FIELDS))})"
MARK = "INSERT OR IGNORE INTO full_seen VALUES (?, ?)"


def row(doc: dict[str, Any]) -> tuple[Any, ...]:
    values = [doc.get(key) for key in FIELDS]
    for index in (13, 19):  # priceCategory, entry: JSON text as the gate stores them
        if values[index] is not None:
            values[index] = json.dumps(values[index])
    return tuple(values)


def main(url: str, event_id: str, db_path: str, page_size: int) -> int:
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # as scanner.databases.STORE_SYNCHRONOUS
    db.executescript(DDL)
    written, skip = 0, 0
    # The gate's own read timeout, not httpx's 5 s: on a busy machine the yardstick must
    # wait for a slow page as long as the gate it measures does.
    timeout = httpx.Timeout(5.0, read=float(os.environ["PLAIN_READ_TIMEOUT"]))
    with httpx.Client(base_url=url, headers={"token": os.environ["PLAIN_TOKEN"]},
                      timeout=timeout) as http:
        while True:
            response = http.get(f"/api/accessusers/tickets/v2/{event_id}",
                                params={"top": page_size, "skip": skip})
            response.raise_for_status()
            body = json.loads(response.content)
            with db:
                db.executemany(INSERT, [row(doc) for doc in body["docs"]])
                db.executemany(MARK, [(event_id, doc["_id"]) for doc in body["docs"]])
            written += len(body["docs"])
            skip += page_size
            if skip >= body["total"]:
                break
    db.close()
    return written


if __name__ == "__main__":
    url, event, path, size = sys.argv[1:5]
    print(main(url, event, path, int(size)))
