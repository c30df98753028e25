"""Builders shared by the journal, gatekeeper, outbox and crash tests (no tests here):
tickets, decisions, a journal over a SQLite file, the simulator and its API settings. The
gate itself comes from ``kits.gate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from scanner.config import ApiConfig, GateConfig, Secret
from scanner.databases import make_journal_engine
from scanner.decide.model import Decision, Direction, Feedback, Reason
from scanner.journal import Journal
from scanner.sim import Faults, SimServer, World
from scanner.tickets import Ticket

EVENT = "ev-main"
OTHER_EVENT = "ev-other"
STAMP = "2030-01-01T10:00:00.000Z"
NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def make_ticket(n: int = 1, *, event: str = EVENT, status: str = "VALID",
                barcode: str | None = None) -> Ticket:
    return Ticket(id=f"tk-{event}-{n}", barcode=barcode or f"BC{n:010d}", event_id=event,
                  status=status, ticket_type_id="tt-1", ticket_name="General admission",
                  seller_id="sel-1", created_at=STAMP, updated_at=STAMP)


def make_decision(ticket: Ticket | None, direction: Direction = Direction.IN, *,
                  granted: bool = True, barcode: str | None = None,
                  reason: Reason | None = None) -> Decision:
    if reason is None:
        reason = (Reason.GRANTED if direction is Direction.IN else Reason.CHECKED_OUT) \
            if granted else Reason.ALREADY_INSIDE
    code = barcode if barcode is not None else (ticket.barcode if ticket else "UNKNOWN-1")
    return Decision(granted=granted, reason=reason, message=reason.value,
                    feedback=Feedback.GREEN if granted else Feedback.RED,
                    direction=direction, barcode=code, ticket=ticket)


def journal_path(config: GateConfig) -> Path:
    """The SQLite file of ``config``'s journal (beside the store unless configured)."""
    return Path(make_url(config.journal_db_url).database or "")


@contextmanager
def open_journal(path: Path, gate_id: str = "g1") -> Iterator[Journal]:
    """A journal over its own engine on the SQLite file ``path``, closed afterwards."""
    engine = make_journal_engine(f"sqlite:///{path}")
    journal = Journal(engine, gate_id)
    try:
        yield journal
    finally:
        journal.close()
        engine.dispose()


@contextmanager
def running_sim(world: World | None = None, **faults: Any) -> Iterator[SimServer]:
    """A real simulator on loopback with the given fault switches, stopped afterwards."""
    world = world or World(seed=5, events=2, tickets_per_event=50)
    server = SimServer(world, Faults(seed=3, **faults)).start()
    try:
        yield server
    finally:
        server.stop()


def api_config(server: SimServer, **overrides: Any) -> ApiConfig:
    # Short timeouts and backoff: a test waits for faults, never for politeness.
    base = ApiConfig(url=server.url, token=Secret(server.token), connect_timeout=1.0,
                     read_timeout=2.0, retries=3)
    return dataclasses.replace(base, **overrides)


def valid_doc(world: World, event_id: str) -> dict[str, Any]:
    """A ticket the gate admits under the default policy: valid, without a timeslot."""
    return next(doc for doc in world.current_tickets(event_id)
                if doc.get("status", "VALID") == "VALID" and not doc.get("slotStartTime"))
