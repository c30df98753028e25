"""The gate's two databases together: the ticket store and its journal, opened and checked.

Two databases: the ticket store (written page after page by the sync) and the journal
(written once per scan). On SQLite each is its own file with its own WAL and write lock, so
the sync's transactions never hold a scan's journal write; the journal's default file is
the store's with ``-journal`` before the suffix (``gate.db`` -> ``gate-journal.db``).

What needs both lives here, above ``scanner.store`` and ``scanner.journal``, which know
nothing of each other: the journal moved out of a store from before version 3, the
journal id both record (``scanner.db.identity``), and ``gate db check``.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from scanner.config.databases import journal_url_beside
from scanner.db import faults, integrity
from scanner.db.engine import open_engine, prepare, same_database, sqlite_file_missing
from scanner.db.identity import Identity
from scanner.db.integrity import Finding
from scanner.db.migrations import migrate
from scanner.errors import StoreError
from scanner.journal import migrations as journal_steps
from scanner.journal.migrations import JOURNAL
from scanner.journal.schema import journal
from scanner.store import migrations as store_steps
from scanner.store.migrations import STORE
from scanner.store.schema import device_settings, meta, sync_state, tickets
from scanner.store.sync_state import HELD_KEY_PREFIX

# The ticket store's commits are not fsync'd (WAL with synchronous=NORMAL: a power cut may
# lose the last commits, never corrupts): everything in it is the server's and the next
# sync rebuilds it, and its fsyncs would queue with the journal's on the same disk. The
# journal's record of who went in cannot be rebuilt: it stays FULL.
STORE_SYNCHRONOUS = "NORMAL"
IDENTITY = Identity(STORE, JOURNAL)
# (table, key column, JSON column) of the ticket store; NULL is allowed in each.
STORE_JSON = ((device_settings, device_settings.c.key, device_settings.c.value),
              (sync_state, sync_state.c.event_id, sync_state.c.full_anchor),
              (tickets, tickets.c.id, tickets.c.price_category),
              (tickets, tickets.c.id, tickets.c.entry))


def make_engine(url: str, *, synchronous: str = STORE_SYNCHRONOUS,
                journal_url: str | None = None) -> Engine:
    """The ticket store's engine, its schema created or migrated to ``SCHEMA_VERSION``.

    A store from before version 3 holds the journal too; it is moved to ``journal_url``
    (default ``journal_url_beside(url)``) first, crash-safe (see ``_move_journal``).

    SQLite runs in WAL mode so the sync writer never blocks the gate's reads, with
    ``synchronous`` (see STORE_SYNCHRONOUS) on its connections; the journal moved out of an
    old store is written with FULL, as the journal always is.
    """
    engine, name = open_engine(url, synchronous, faults.STORE)
    target = journal_url or journal_url_beside(url)
    move = {store_steps.MOVED_JOURNAL: lambda: _move_journal(engine, name, url, target)}
    prepare(engine, name, lambda: migrate(engine, name, STORE, across=move))
    return engine


def make_journal_engine(url: str, *, synchronous: str = "FULL", store: Engine | None = None,
                        accept: bool = False) -> Engine:
    """The journal's engine, its schema created or checked. Open the store first
    (``make_engine``): a store from before version 3 moves its journal here.

    With ``store``, the journal must be the one the store recorded (``IDENTITY``): a
    missing, empty or other journal is refused before anything is created, unless
    ``accept`` (``gate db new-journal``) takes it, or a new empty one, as the store's.
    """
    known = None if store is None or accept else IDENTITY.known_journal(store)
    if store is not None and known is not None and sqlite_file_missing(url):
        raise IDENTITY.missing(store, faults.database_name(make_url(url)), known)
    engine, name = open_engine(url, synchronous, faults.JOURNAL)

    def checked_and_migrated() -> None:
        # The check is the first connection: a path SQLite cannot open (a folder) fails
        # there, and must be the same one line as a failed migration.
        if store is not None:
            IDENTITY.check(store, engine, known)
        migrate(engine, name, JOURNAL)
        if store is not None:
            IDENTITY.link(store, engine)

    try:
        prepare(engine, name, checked_and_migrated)
    except BaseException:
        engine.dispose()
        raise
    return engine


def schema_version(engine: Engine) -> int:
    """The ticket store's schema version (0: none)."""
    return STORE.version_of(engine)


def journal_schema_version(engine: Engine) -> int:
    return JOURNAL.version_of(engine)


def _move_journal(store: Engine, name: str, url: str, journal_url: str) -> None:
    """Store version 3: the journal moves out of the store into its own database.

    Two transactions, one per database, so a kill between them must be safe. First the
    journal database gets every scan, the journal's keys and a ``moved_from`` marker (the
    copy's scan count and highest seq) in one transaction; then the store drops its copy
    and becomes version 3 in another. A restart that finds a version-2 store and a journal
    database with the marker finishes the drop only if the store's journal still matches
    the copy; anything else (a mismatch, a journal database holding other scans) is refused,
    with both files left as they were.
    """
    if same_database(url, journal_url):
        with store.begin() as conn:
            journal_steps.upgrade_in_place(conn, store_steps.journal_keys(conn))
            store_steps.hand_over_journal(conn)
        IDENTITY.link(store, store)
        return
    target, target_name = open_engine(journal_url, "FULL", faults.JOURNAL)
    try:
        with store.connect() as src:
            fingerprint = journal_steps.census(src)
            found = STORE.read_version(src)
            keys = store_steps.journal_keys(src)
        if found != store_steps.LAST_SINGLE_FILE:  # another process finished meanwhile
            return
        with target.begin() as dst:
            version = JOURNAL.read_version(dst)
            if version > JOURNAL.latest:
                raise JOURNAL.newer(target_name, version)
            marker = journal_steps.moved_from(dst) if version else None
            if marker is not None:
                journal_steps.check_resumable(marker, fingerprint, name, target_name)
            elif journal_steps.has_scans(dst):
                if fingerprint != "0:0":
                    raise StoreError(
                        f"{target_name}: already holds scans, and {name} still holds its "
                        f"own journal from before version 3; point journal_db elsewhere")
            else:
                journal_steps.refuse_legacy(dst, target_name)
                with store.connect() as src:
                    journal_steps.copy_journal(src, dst, fingerprint, keys)
        with store.begin() as conn:
            store_steps.drop_store_journal(conn)
        IDENTITY.link(store, target)  # both now know the journal moved out
    finally:
        target.dispose()


def check(store_url: str, journal_url: str, *, quick: bool = False) -> list[Finding]:
    """``gate db check``: one finding per database (one in all when both share one). The
    store's damage marker (``faults.mark_damaged``) is set or cleared by what was found."""
    same = make_url(store_url) == make_url(journal_url)

    def store_content(engine: Engine, finding: Finding) -> None:
        integrity.json_columns(engine, finding, STORE_JSON)
        integrity.json_keys(engine, finding, meta, HELD_KEY_PREFIX)

    def journal_content(engine: Engine | None, finding: Finding) -> None:
        integrity.count_rows(engine, finding, journal.c.seq, "scan")

    store = integrity.inspect(store_url, STORE, quick, store_content)
    found = [store.finding]
    if not same:
        journal_db = integrity.inspect(journal_url, JOURNAL, quick, journal_content)
        found.append(journal_db.finding)
        integrity.match(store, journal_db, IDENTITY)
        journal_db.close()
    else:
        journal_content(store.engine, store.finding)
    if store.finding.ok:
        faults.clear_damaged(store.finding.name)
    else:
        faults.mark_damaged(store.finding.name, store.finding.problems[0])
    store.close()
    return found
