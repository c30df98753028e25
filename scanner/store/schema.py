"""Tables of the ticket store. ``SCHEMA_VERSION`` moves with every change here, and
``migrations.py`` holds the step that brings an older database to it.

The journal lives in a database of its own (``scanner.journal.schema``) since version 3, so
the sync's write transactions never hold a scan's journal write. Since version 4 a full
sync marks the tickets it sees in ``full_seen`` instead of rewriting each ticket's row.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from scanner.db.keyed import key_value_table

SCHEMA_VERSION = 4

metadata = MetaData()

meta = key_value_table("meta", metadata)

tickets = Table(
    "tickets", metadata,
    Column("id", String, primary_key=True),            # vivenu _id
    Column("barcode", String, nullable=False),
    Column("event_id", String, nullable=False),
    Column("status", String, nullable=False),
    Column("ticket_type_id", String, nullable=False),
    Column("ticket_name", String, nullable=False),
    Column("seller_id", String, nullable=False),
    Column("created_at", String, nullable=False),      # normalized ISO UTC, sorts as text
    Column("updated_at", String, nullable=False),
    Column("name", String),
    Column("price_category_id", String),
    Column("category_ref", String),
    Column("parent_event_id", String),
    Column("price_category", Text),                    # JSON object or NULL
    Column("area", String),
    Column("row", String),
    Column("seat", String),
    Column("discount_id", String),
    Column("discount", String),
    Column("entry", Text),                             # JSON list or NULL
    Column("slot_start", String),
    Index("ix_tickets_barcode", "barcode"),
    # The sweep and its count walk one event's tickets by id (``scanner.store.seen``).
    Index("ix_tickets_event", "event_id", "id"),
)

# The ticket ids the full sync in progress of an event has seen (``scanner.store.seen``):
# the sweep deletes the event's tickets without a mark. A separate narrow table, so marking
# an unchanged ticket writes a few bytes here instead of its whole row and index entries.
full_seen = Table(
    "full_seen", metadata,
    Column("event_id", String, primary_key=True),
    Column("id", String, primary_key=True),
    # The key is all there is: no rowid b-tree beside it on SQLite.
    sqlite_with_rowid=False,
)

events = Table(
    "events", metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("seen_at", String, nullable=False),
)

# One row per key of the device's /me answer, kept as the server sent it.
device_settings = Table(
    "device_settings", metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),             # JSON
    Column("fetched_at", String, nullable=False),
)

sync_state = Table(
    "sync_state", metadata,
    Column("event_id", String, primary_key=True),
    # Full syncs started, for ``gate status``.
    Column("generation", Integer, nullable=False, default=0),
    # A full sync in progress: its fixed upper bound, next offset and the ids it last saw,
    # so a killed run resumes where it stopped instead of starting over.
    Column("full_until", String),
    Column("full_skip", Integer),
    Column("full_anchor", Text),                       # JSON list of ids
    Column("full_total", Integer),                     # listing total when the cursor was saved
    Column("last_full_at", String),                    # when the last full sync finished
    Column("delta_until", String),                     # upper bound of the last delta window
    Column("last_sync_at", String),
    Column("server_total", Integer),
)
