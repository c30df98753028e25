"""Tables of the journal database: every decision, and the journal's own keys.

Its own database (a SQLite file beside the ticket store by default), with its own version:
the sync writes the ticket store page after page, and a scan's journal write must never
queue behind that. The table names differ from the store's (``journal_meta``, not ``meta``),
so both schemas can also share one database when an operator points both at the same URL.
``JOURNAL_SCHEMA_VERSION`` moves with every change here; steps live in
``scanner.journal.migrations``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

from scanner.db.keyed import key_value_table

JOURNAL_SCHEMA_VERSION = 4

journal_metadata = MetaData()

# schema_version, clock_offset (with its stamp and the server time seen), last_upload,
# mesh_link_state, journal_id, and moved_from (see scanner.databases).
journal_meta = key_value_table("journal_meta", journal_metadata)

# Every decision, granted or denied, journaled before the gate acts on it.
journal = Table(
    "journal", journal_metadata,
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
    # When the gate acted on a grant (ISO UTC ms); NULL: not actuated, or no actuator.
    Column("actuated_at", String),
    # Whether the passage sensor saw the person go through; NULL: no passage contact. A
    # grant with passed = false ("opened, not passed") counts for neither presence nor
    # history: the person is where they were.
    Column("passed", Boolean),
    # (ticket_id, seq): a ticket's history comes back in order on every backend.
    Index("ix_journal_ticket_seq", "ticket_id", "seq"),
    Index("ix_journal_upload", "upload_state", "event_id", "seq"),
)

# -- version 2: the venue mesh (scanner.mesh) -------------------------------------------

# Every gate's records, this gate's own included (with the HLC stamp and mesh sequence
# number the journal has not). A peer's record has ``upload_state = 'peer'``: its origin
# uploads it, never this gate; this gate's own are ``'journal'``: the journal uploads them.
mesh_scans = Table(
    "mesh_scans", journal_metadata,
    Column("scan_id", String, primary_key=True),       # idempotency: a record is kept once
    Column("origin", String, nullable=False),          # the gate that decided
    Column("seq", Integer, nullable=False),            # the origin's mesh sequence number
    Column("hlc", String, nullable=False),
    Column("ticket_id", String),
    Column("event_id", String),
    Column("barcode", String, nullable=False),
    Column("direction", String, nullable=False),
    Column("result", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("scanned_at", String, nullable=False),
    Column("journal_seq", Integer),                    # own records: the journal row
    Column("upload_state", String, nullable=False),    # peer | journal
    Index("ix_mesh_scans_ticket_hlc", "ticket_id", "hlc"),
    Index("ix_mesh_scans_origin_seq", "origin", "seq"),
)

# Two admissions of one ticket at different gates with no check-out between them: the gates
# were on different sides of a split. ``first`` is the earlier by HLC.
mesh_conflicts = Table(
    "mesh_conflicts", journal_metadata,
    Column("first_scan_id", String, primary_key=True),
    Column("second_scan_id", String, primary_key=True),
    Column("ticket_id", String, nullable=False),
    Column("detected_at", String, nullable=False),
)

# -- version 3: venue commands (scanner.venue) --------------------------------------------

# Every supervisor command this gate applied, signed envelope and all: what it obeys now is
# the newest of each slot (issuer, scope, target), and the envelopes are what it hands a
# peer that missed them (anti-entropy), since no gate can sign one.
venue_commands = Table(
    "venue_commands", journal_metadata,
    Column("id", String, primary_key=True),            # the command's UUID: applied once
    Column("issuer", String, nullable=False),          # the supervisor key's fingerprint
    Column("seq", Integer, nullable=False),            # the issuer's number for it
    Column("scope", String, nullable=False),           # venue | zone | gate | ticket
    Column("target", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("issued_at", String, nullable=False),       # the issuer's clock, ISO UTC ms
    Column("applied_at", String, nullable=False),      # this gate's clock, ISO UTC ms
    Column("envelope", Text, nullable=False),          # the signed payload, as received
    Index("ix_venue_commands_slot", "issuer", "scope", "target", "seq"),
)

# -- version 4: stewards and supervisors (scanner.supervise) -----------------------------

# Who made a journal entry that no read made, and why: an override of a denial, the answer
# to a held ticket, a passage alarm. One row per such journal entry, written in its
# transaction. ``ref_scan_id`` is the scan it answers (the denial overridden, the held
# ticket); unique, so a denial is overridden and a held ticket settled once only.
supervision = Table(
    "supervision", journal_metadata,
    Column("scan_id", String, primary_key=True),       # the journal entry it explains
    Column("ref_scan_id", String, unique=True),
    Column("role", String, nullable=False),            # supervisor | steward | button | gate
    Column("session", String),                         # a tag of the kiosk session, not it
    Column("why", String),                             # a code of the short list
    Column("note", Text),                              # the supervisor's own words
)
