"""Tables of the local store. ``SCHEMA_VERSION`` moves with every change here, and
``migrations.py`` holds the step that brings an older database to it."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 2

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

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
    # The full-sync generation that last saw this ticket; the reconciling sync drops
    # tickets of an event whose generation is older than the finished run's.
    Column("sync_gen", Integer, nullable=False, default=0),
    Index("ix_tickets_barcode", "barcode"),
    Index("ix_tickets_event_gen", "event_id", "sync_gen"),
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

# Every decision, granted or denied, journaled before the gate acts on it.
journal = Table(
    "journal", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", String, nullable=False, unique=True),  # client-made, idempotency key
    Column("gate_id", String, nullable=False),
    Column("event_id", String),
    Column("ticket_id", String),
    Column("barcode", String, nullable=False),
    Column("direction", String, nullable=False),       # IN | OUT
    Column("result", String, nullable=False),          # OK | FAIL
    Column("reason", String, nullable=False),
    Column("message", String, nullable=False, default=""),
    Column("scanned_at", String, nullable=False),      # ISO UTC ms, server-clock corrected
    Column("offline", Boolean, nullable=False, default=True),
    Column("latency_ms", Float),
    # pending -> sent | rejected; "local" for reads the API cannot take (shorter than 8)
    Column("upload_state", String, nullable=False, default="pending"),
    Column("upload_error", Text),
    Column("uploaded_at", String),
    # (ticket_id, seq): a ticket's history comes back in order on every backend (v2; v1
    # indexed ticket_id alone, which only SQLite's rowid made ordered).
    Index("ix_journal_ticket_seq", "ticket_id", "seq"),
    Index("ix_journal_upload", "upload_state", "event_id", "seq"),
)
