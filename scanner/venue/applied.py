"""The venue commands a gate applied, kept in its journal database (``venue_commands``).

Applying is one transaction that also decides whether to: a command already held (by id)
or not newer than the newest of its slot is refused there, under the database's write
lock, so two processes on one journal cannot both apply the same order. What the gate
obeys after a restart is read back from here before its first decision.
"""

from __future__ import annotations

from enum import StrEnum

import orjson
from sqlalchemy import Engine, func, select

from scanner.db import faults
from scanner.db.database import Database
from scanner.db.keyed import lock_for_write
from scanner.journal.schema import venue_commands
from scanner.venue.command import Command, Refused, parse

_c = venue_commands.c


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "already_applied"   # this very command is held: the broker said it again
    SUPERSEDED = "superseded"       # its slot holds a newer one: a replay, or a late copy


class VenueStore(Database):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, faults.JOURNAL)

    def apply(self, command: Command, envelope: bytes, applied_at: str) -> Outcome:
        """Keep ``command`` as the newest of its slot, unless it is held or older."""
        issuer, scope, target = command.slot
        with self.writing() as conn:
            lock_for_write(conn, venue_commands)
            if conn.execute(select(_c.id).where(_c.id == command.id)).first() is not None:
                return Outcome.DUPLICATE
            newest = conn.execute(select(func.max(_c.seq)).where(
                _c.issuer == issuer, _c.scope == scope, _c.target == target)).scalar()
            if newest is not None and command.seq <= newest:
                return Outcome.SUPERSEDED
            conn.execute(venue_commands.insert().values(
                id=command.id, issuer=issuer, seq=command.seq, scope=scope, target=target,
                kind=command.kind.value, reason=command.reason, issued_at=command.issued_at,
                applied_at=applied_at, envelope=envelope.decode()))
        return Outcome.APPLIED

    def current(self) -> list[tuple[Command, bytes]]:
        """The newest command of every slot, with its signed envelope, oldest first."""
        newest = (select(_c.issuer, _c.scope, _c.target, func.max(_c.seq).label("seq"))
                  .group_by(_c.issuer, _c.scope, _c.target).subquery())
        query = (select(_c.envelope).join(newest, (_c.issuer == newest.c.issuer)
                                          & (_c.scope == newest.c.scope)
                                          & (_c.target == newest.c.target)
                                          & (_c.seq == newest.c.seq))
                 .order_by(_c.seq, _c.id))
        with self.reading() as conn:
            envelopes = [row[0].encode() for row in conn.execute(query)]
        out = []
        for envelope in envelopes:
            try:  # checked when it came; a row that no longer parses is not obeyed
                out.append((parse(orjson.loads(envelope)["command"]), envelope))
            except (Refused, orjson.JSONDecodeError, KeyError, TypeError):
                continue
        return out

    def history(self, limit: int = 100) -> list[dict[str, object]]:
        """The latest applied commands, newest first: for status and the control room."""
        columns = (_c.seq, _c.issued_at, _c.applied_at, _c.kind, _c.scope, _c.target,
                   _c.reason, _c.issuer, _c.id)
        with self.reading() as conn:
            rows = conn.execute(select(*columns).order_by(_c.seq.desc()).limit(limit))
            return [dict(row._mapping) for row in rows]
