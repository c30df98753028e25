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

from sqlalchemy import Engine, Table, select

from scanner.errors import JournalMismatch
from scanner.journal.schema import journal_meta
from scanner.store import migrations
from scanner.store.faults import database_name
from scanner.store.keyed import put_meta
from scanner.store.schema import meta

JOURNAL_ID_KEY = "journal_id"
ACCEPT = "gate db new-journal"


def _read(engine: Engine, table: Table) -> str | None:
    with engine.connect() as conn:
        if not migrations.read_version(conn, table):
            return None
        return conn.execute(select(table.c.value)
                            .where(table.c.key == JOURNAL_ID_KEY)).scalar()


def known_journal(store: Engine) -> str | None:
    """The id of the journal the ticket store recorded, or None."""
    return _read(store, meta)


def journal_id(journal: Engine) -> str | None:
    return _read(journal, journal_meta)


def missing(store: Engine, journal_name: str, known: str) -> JournalMismatch:
    return JournalMismatch(
        f"journal {journal_name} is missing or empty, but the ticket store "
        f"{database_name(store.url)} recorded journal {known}: its scans are not there. If "
        f"the journal was moved, point journal_db (GATE_JOURNAL_DB) at it; to start an empty "
        f"journal on purpose: {ACCEPT}")


def check(store: Engine, journal: Engine, known: str | None) -> None:
    """Refuse a journal that is not the one ``known`` (the store's record) names."""
    if known is None:
        return
    name = database_name(journal.url)
    with journal.connect() as conn:
        created = migrations.read_version(conn, journal_meta) > 0
    if not created:
        raise missing(store, name, known)
    found = journal_id(journal)
    if found != known:
        raise JournalMismatch(
            f"journal {name} is {'journal ' + found if found else 'a journal without an id'}"
            f", not journal {known} that the ticket store {database_name(store.url)} "
            f"recorded; point journal_db (GATE_JOURNAL_DB) at this store's journal, or "
            f"accept this one as its journal: {ACCEPT}")


def link(store: Engine, journal: Engine) -> str:
    """Write one journal id into both databases where it is missing (journal first: a kill
    between the two writes leaves a store without an id, which adopts it next time); a
    store that knew another journal is re-pointed, so call ``check`` first. Returns it."""
    found = journal_id(journal)
    jid = found or uuid.uuid4().hex
    if found is None:
        with journal.begin() as conn:
            put_meta(conn, JOURNAL_ID_KEY, jid, journal_meta)
    if known_journal(store) != jid:
        with store.begin() as conn:
            put_meta(conn, JOURNAL_ID_KEY, jid)
    return jid
