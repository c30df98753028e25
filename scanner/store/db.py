"""Engine construction and schema migrations for the ticket store and the journal.

Two databases: the ticket store (written page after page by the sync) and the journal
(written once per scan). On SQLite each is its own file with its own WAL and write lock, so
the sync's transactions never hold a scan's journal write; the journal's default file is
the store's with ``-journal`` before the suffix (``gate.db`` -> ``gate-journal.db``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from scanner.config.databases import journal_url_beside
from scanner.errors import StoreError
from scanner.journal.schema import JOURNAL_SCHEMA_VERSION, journal_meta, journal_metadata
from scanner.store import faults, identity, migrations
from scanner.store.driver_sql import describe
from scanner.store.keyed import lock_for_write
from scanner.store.schema import SCHEMA_VERSION, meta, metadata

# Writers (the sync, the upload worker) may wait this long for another writer's commit.
# The scan path never does: the journal has its own database, and the store's scan-path
# reads are WAL reads (see SCAN_BUSY_TIMEOUT_MS in driver_sql).
WRITER_BUSY_TIMEOUT_S = 30
# The ticket store's commits are not fsync'd (WAL with synchronous=NORMAL: a power cut may
# lose the last commits, never corrupts): everything in it is the server's and the next
# sync rebuilds it, and its fsyncs would queue with the journal's on the same disk. The
# journal's record of who went in cannot be rebuilt: it stays FULL.
STORE_SYNCHRONOUS = "NORMAL"
PREPARE_ATTEMPTS = 3
PREPARE_RETRY_S = 0.2


def make_engine(url: str, *, synchronous: str = STORE_SYNCHRONOUS,
                journal_url: str | None = None) -> Engine:
    """The ticket store's engine, its schema created or migrated to ``SCHEMA_VERSION``.

    A store from before version 3 holds the journal too; it is moved to ``journal_url``
    (default ``journal_url_beside(url)``) first, crash-safe (see ``_move_journal``).

    SQLite runs in WAL mode so the sync writer never blocks the gate's reads, with
    ``synchronous`` (see STORE_SYNCHRONOUS) on its connections; the journal moved out of an
    old store is written with FULL, as the journal always is.
    """
    engine, name = _open(url, synchronous, faults.STORE)
    target = journal_url or journal_url_beside(url)
    _prepare(engine, name, lambda: _migrate_store(engine, name, url, target, "FULL"))
    return engine


def make_journal_engine(url: str, *, synchronous: str = "FULL", store: Engine | None = None,
                        accept: bool = False) -> Engine:
    """The journal's engine, its schema created or checked. Open the store first
    (``make_engine``): a store from before version 3 moves its journal here.

    With ``store``, the journal must be the one the store recorded (``identity``): a
    missing, empty or other journal is refused before anything is created, unless
    ``accept`` (``gate db new-journal``) takes it, or a new empty one, as the store's.
    """
    known = None if store is None or accept else identity.known_journal(store)
    if store is not None and known is not None and _sqlite_file_missing(url):
        raise identity.missing(store, faults.database_name(make_url(url)), known)
    engine, name = _open(url, synchronous, faults.JOURNAL)
    try:
        if store is not None:
            identity.check(store, engine, known)
        _prepare(engine, name, lambda: _migrate_journal(engine, name))
        if store is not None:
            identity.link(store, engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def _sqlite_file_missing(url: str) -> bool:
    path = sqlite_file(url)
    return path is not None and not path.exists()


def schema_version(engine: Engine) -> int:
    """The ticket store's schema version (0: none)."""
    return _version(engine, meta)


def journal_schema_version(engine: Engine) -> int:
    return _version(engine, journal_meta)


def _version(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return migrations.read_version(conn, table)


def _open(url: str, synchronous: str, kind: str) -> tuple[Engine, str]:
    """An engine for ``url`` (a ``kind`` of database: ``faults.STORE`` or ``JOURNAL``) and
    the name errors give it (the file, or the URL without its password)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError for garbage
        raise StoreError(f"database URL is not valid: {exc}") from None
    name = faults.database_name(parsed)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create database folder {folder}: "
                                 f"{exc.strerror}") from exc
        kwargs["connect_args"] = {"check_same_thread": False,
                                  "timeout": WRITER_BUSY_TIMEOUT_S}
    else:
        # A database server can restart under a running gate: test each connection as it
        # leaves the pool (one round trip, never on the scan path, whose connections are
        # held) so a dead one is replaced, with every other connection from before.
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # a missing driver, say
        raise StoreError(f"cannot open database {name}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine, synchronous)
    faults.watch(engine, kind)
    return engine, name


def _prepare(engine: Engine, name: str, migrate: Callable[[], None]) -> None:
    """Run ``migrate``; any fault is one StoreError naming the database, the engine closed.

    Two processes starting on a fresh install (the sync and upload services) may create the
    same tables at once, and SQLite runs DDL outside a transaction: the loser's "already
    exists" is retried, and the retry finds the schema (each step re-reads the version).
    """
    for attempt in range(PREPARE_ATTEMPTS):
        try:
            migrate()
            return
        except SQLAlchemyError as exc:
            if attempt + 1 < PREPARE_ATTEMPTS:
                time.sleep(PREPARE_RETRY_S)
                continue
            engine.dispose()
            # describe(): not every SQLAlchemyError wraps a driver error (``orig``).
            raise StoreError(f"cannot prepare database {name}: {describe(exc)}") from exc
        except StoreError:
            engine.dispose()
            raise


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={WRITER_BUSY_TIMEOUT_S * 1000}")
        cursor.close()


def _outdated(engine: Engine, table: Table, name: str, what: str, known: int) -> int | None:
    """The version to step up from, or None when current; a newer one is refused."""
    current = _version(engine, table)
    if current > known:
        raise _newer(name, what, current, known)
    return None if current == known else current


def _newer(name: str, what: str, found: int, known: int) -> StoreError:
    return StoreError(f"{name}: {what} schema {found} is newer than this gate-scanner "
                      f"({known}); upgrade the software")


def _migrate_store(engine: Engine, name: str, url: str, journal_url: str,
                   synchronous: str) -> None:
    """Create a fresh store at the current version, or step an older one up to it."""
    current = _outdated(engine, meta, name, "ticket store", SCHEMA_VERSION)
    if current is None:
        return
    with engine.begin() as conn:
        lock_for_write(conn)  # as for the journal: created whole, by one process
        current = migrations.read_version(conn, meta)
        if current >= SCHEMA_VERSION:
            return
        if current == 0 and not engine.dialect.has_table(conn, "tickets"):
            metadata.create_all(conn)
            migrations.set_version(conn, SCHEMA_VERSION)
            return
        if current < migrations.LAST_SINGLE_FILE:
            for version in range(current + 1, migrations.LAST_SINGLE_FILE + 1):
                migrations.STEPS[version](conn)
            migrations.set_version(conn, migrations.LAST_SINGLE_FILE)
    if current < migrations.MOVED_JOURNAL:
        _move_journal(engine, name, url, journal_url, synchronous)
    for version in range(max(current, migrations.MOVED_JOURNAL) + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            if migrations.read_version(conn, meta) >= version:
                continue  # another process stepped it meanwhile
            migrations.STEPS[version](conn)
            migrations.set_version(conn, version)


def _move_journal(store: Engine, name: str, url: str, journal_url: str,
                  synchronous: str) -> None:
    """Store version 3: the journal moves out of the store into its own database.

    Two transactions, one per database, so a kill between them must be safe. First the
    journal database gets every scan, the journal's keys and a ``moved_from`` marker (the
    copy's scan count and highest seq) in one transaction; then the store drops its copy
    and becomes version 3 in another. A restart that finds a version-2 store and a journal
    database with the marker finishes the drop only if the store's journal still matches
    the copy; anything else (a mismatch, a journal database holding other scans) is refused,
    with both files left as they were.
    """
    if _same_database(url, journal_url):
        with store.begin() as conn:
            migrations.upgrade_in_place(conn)
        identity.link(store, store)
        return
    target, target_name = _open(journal_url, synchronous, faults.JOURNAL)
    try:
        with store.connect() as src:
            fingerprint = migrations.census(src)
            found = migrations.read_version(src, meta)
        if found != migrations.LAST_SINGLE_FILE:  # another process finished meanwhile
            return
        with target.begin() as dst:
            version = migrations.read_version(dst, journal_meta)
            if version > JOURNAL_SCHEMA_VERSION:
                raise _newer(target_name, "journal", version, JOURNAL_SCHEMA_VERSION)
            marker = dst.execute(journal_meta.select().where(
                journal_meta.c.key == migrations.MOVED_FROM_KEY)).first() \
                if version else None
            if marker is not None:
                migrations.check_resumable(marker.value, fingerprint, name, target_name)
            elif migrations.journal_has_scans(dst):
                if fingerprint != "0:0":
                    raise StoreError(
                        f"{target_name}: already holds scans, and {name} still holds its "
                        f"own journal from before version 3; point journal_db elsewhere")
            else:
                _refuse_legacy(dst, target_name)
                journal_metadata.create_all(dst)
                with store.connect() as src:
                    migrations.copy_journal(src, dst, fingerprint)
        with store.begin() as conn:
            migrations.drop_store_journal(conn)
        identity.link(store, target)  # both now know the journal moved out
    finally:
        target.dispose()


def _migrate_journal(engine: Engine, name: str) -> None:
    if _outdated(engine, journal_meta, name, "journal", JOURNAL_SCHEMA_VERSION) is None:
        return
    with engine.begin() as conn:
        # Read again under the lock: a process starting beside this one (the upload
        # service, say) may be creating the same journal; it is created whole or not yet.
        lock_for_write(conn)
        current = migrations.read_version(conn, journal_meta)
        if current > JOURNAL_SCHEMA_VERSION:
            raise _newer(name, "journal", current, JOURNAL_SCHEMA_VERSION)
        if current == JOURNAL_SCHEMA_VERSION:
            return
        if current == 0:
            _refuse_legacy(conn, name)
            journal_metadata.create_all(conn)
        for version in range(current + 1 if current else JOURNAL_SCHEMA_VERSION + 1,
                             JOURNAL_SCHEMA_VERSION + 1):
            migrations.JOURNAL_STEPS[version](conn)
        migrations.set_version(conn, JOURNAL_SCHEMA_VERSION, journal_meta)


def _refuse_legacy(conn: Any, name: str) -> None:
    """A journal table without ``journal_meta`` is a whole store from before version 3."""
    if conn.dialect.has_table(conn, "journal"):
        raise StoreError(f"{name}: is a gate database from before version 3, not a journal; "
                         f"open it as the store (db), whose journal then moves out")


def _same_database(a: str, b: str) -> bool:
    """Whether two URLs name one database (in-memory SQLite ones never do)."""
    left, right = make_url(a), make_url(b)
    if left.get_backend_name() == right.get_backend_name() == "sqlite":
        if not left.database or not right.database or ":memory:" in (left.database,
                                                                     right.database):
            return False
        return Path(left.database).expanduser().resolve() == \
            Path(right.database).expanduser().resolve()
    return left.render_as_string(hide_password=False) == \
        right.render_as_string(hide_password=False)
