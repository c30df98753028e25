"""Which journal belongs to which ticket store, so a lost journal is never silently replaced.

The journal is the only copy of a gate's scans and presence. If its file vanished (a wrong
mount, a deleted file, a changed ``journal_db``), opening the path would create an empty
journal, and the gate would carry on with nobody inside and nothing to upload. So both
databases carry one random journal id (``meta`` and ``journal_meta``, key ``journal_id``),
written when the journal is created or moved out of the store, and every open compares
them: a missing, empty or different journal is refused in one line (``JournalMismatch``),
before anything is created. ``gate db new-journal`` accepts the journal that opens (empty
if there is none) on purpose.

A store without an id (a fresh one, one rebuilt by ``gate db rebuild-store``, or one from
before ids) takes the id of the journal it meets: the journal is what must be kept.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, select

from scanner.db.faults import database_name
from scanner.db.keyed import put_meta
from scanner.db.migrations import Schema
from scanner.errors import JournalMismatch

JOURNAL_ID_KEY = "journal_id"
ACCEPT = "gate db new-journal"


class Identity:
    """The journal id in the ticket store's ``store`` schema and the journal's ``journal``
    schema (their key/value tables hold it)."""

    def __init__(self, store: Schema, journal: Schema) -> None:
        self._store = store
        self._journal = journal

    def known_journal(self, store: Engine) -> str | None:
        """The id of the journal the ticket store recorded, or None."""
        return _read(store, self._store)

    def journal_id(self, journal: Engine) -> str | None:
        return _read(journal, self._journal)

    def missing(self, store: Engine, journal_name: str, known: str) -> JournalMismatch:
        return JournalMismatch(
            f"journal {journal_name} is missing or empty, but the ticket store "
            f"{database_name(store.url)} recorded journal {known}: its scans are not there. "
            f"If the journal was moved, point journal_db (GATE_JOURNAL_DB) at it; to start "
            f"an empty journal on purpose: {ACCEPT}")

    def check(self, store: Engine, journal: Engine, known: str | None) -> None:
        """Refuse a journal that is not the one ``known`` (the store's record) names."""
        if known is None:
            return
        name = database_name(journal.url)
        if not self._journal.version_of(journal):
            raise self.missing(store, name, known)
        found = self.journal_id(journal)
        if found != known:
            raise JournalMismatch(
                f"journal {name} is "
                f"{'journal ' + found if found else 'a journal without an id'}, not journal "
                f"{known} that the ticket store {database_name(store.url)} recorded; point "
                f"journal_db (GATE_JOURNAL_DB) at this store's journal, or accept this one "
                f"as its journal: {ACCEPT}")

    def link(self, store: Engine, journal: Engine) -> str:
        """Write one journal id into both databases where it is missing (journal first: a
        kill between the two writes leaves a store without an id, which adopts it next
        time); a store that knew another journal is re-pointed, so call ``check`` first.
        Returns it."""
        found = self.journal_id(journal)
        jid = found or uuid.uuid4().hex
        if found is None:
            with journal.begin() as conn:
                put_meta(conn, JOURNAL_ID_KEY, jid, self._journal.meta)
        if self.known_journal(store) != jid:
            with store.begin() as conn:
                put_meta(conn, JOURNAL_ID_KEY, jid, self._store.meta)
        return jid


def _read(engine: Engine, schema: Schema) -> str | None:
    with engine.connect() as conn:
        if not schema.read_version(conn):
            return None
        return conn.execute(select(schema.meta.c.value)
                            .where(schema.meta.c.key == JOURNAL_ID_KEY)).scalar()
