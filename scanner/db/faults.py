"""Database faults as the operator meets them: one StoreError naming the file and the fix.

A damaged database (a page overwritten on an SD card, a file that is not a database, stored
JSON that no longer parses) is ``CorruptStore``; the message says which of the two
databases it is, where it lives and what to do, since the remedies differ: the ticket store
can be rebuilt from the server (``gate db rebuild-store``), the journal cannot (its scans
exist nowhere else). Each engine gets a ``handle_error`` hook (``watch``), so every
statement run through SQLAlchemy on it is covered in one place; the held driver
connections of the scan path and the JSON decoders call ``translate`` and ``loads``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url

from scanner.clock import utc_now
from scanner.db.driver_sql import describe
from scanner.errors import CorruptStore, StoreError
from scanner.tickets import utc_iso

log = logging.getLogger("scanner.store")

STORE, JOURNAL = "ticket store", "journal"
# Beside a SQLite store found damaged: ``gate.db`` -> ``gate.db.damaged``.
DAMAGED_SUFFIX = ".damaged"
# What the operator can do about a damaged database of each kind.
REMEDY = {
    STORE: "`gate db rebuild-store` moves it aside and rebuilds it from the server, keeping "
           "the journal",
    JOURNAL: "stop the gate, copy the file (with its -wal and -shm) aside and recover it "
             "with `sqlite3 {name} .recover`; the gate never replaces a journal",
}
# SQLite's words for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB); other dialects' drivers
# report damage as errors of their own that are not told apart here.
_DAMAGE = ("malformed", "not a database", "database corruption", "corrupt")


def database_name(url: URL) -> str:
    """The name errors give a database: its file, or the URL without its password."""
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def is_damage(exc: BaseException) -> bool:
    """Whether a driver error (wrapped by SQLAlchemy or not) says the file is damaged."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, sqlite3.DatabaseError):
        # OperationalError (locked, read-only, cannot open) and the integrity family are
        # faults of the moment; a bare DatabaseError is SQLite's corruption class.
        return type(cause) is sqlite3.DatabaseError or any(w in str(cause).lower()
                                                           for w in _DAMAGE)
    return False


def damaged(kind: str, name: str, what: str) -> CorruptStore:
    """The one line for a damaged database: which one, where, what broke, what to do. A
    damaged ticket store is also marked (``mark_damaged``) for ``gate status``."""
    if kind == STORE:
        mark_damaged(name, what)
    check = "`gate db check` lists the damage; " if kind == STORE else ""
    return CorruptStore(f"{kind} {name} is damaged ({what}); {check}{remedy(kind, name)}")


def remedy(kind: str, name: str) -> str:
    """What the operator can do about damage to the database ``name`` of ``kind``."""
    return REMEDY[kind].format(name=name)


def damage_marker(name: str) -> Path | None:
    """The file beside a SQLite store that says it was found damaged (None: not a file)."""
    if "://" in name or name in ("", ":memory:"):
        return None
    return Path(f"{name}{DAMAGED_SUFFIX}")


def mark_damaged(name: str, what: str) -> None:
    """Note beside the store that it was found damaged, so every later ``gate status`` (of
    any process, the daemon's kiosk too) says so until ``gate db check`` finds it sound or
    ``gate db rebuild-store`` replaces it. A file, not a row: the store is what is broken.
    Best effort: a disk that cannot take it has the error line anyway."""
    marker = damage_marker(name)
    if marker is None or marker.exists():
        return
    try:
        marker.write_text(orjson.dumps({"at": utc_iso(utc_now()), "what": what}).decode() + "\n",
                          encoding="utf-8")
        log.error("ticket store %s is damaged (%s); %s", name, what, remedy(STORE, name))
    except OSError:
        pass


def clear_damaged(name: str) -> None:
    marker = damage_marker(name)
    if marker is not None:
        marker.unlink(missing_ok=True)


def store_damage(url: str) -> dict[str, Any] | None:
    """For ``gate status``: what was found damaged in the store at ``url``, or None."""
    return read_damaged(database_name(make_url(url)))


def read_damaged(name: str) -> dict[str, Any] | None:
    """What ``mark_damaged`` noted, or None when the store is not marked."""
    marker = damage_marker(name)
    try:
        text = marker.read_text(encoding="utf-8") if marker is not None else None
    except OSError:
        return None
    if text is None:
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = None
    return doc if isinstance(doc, dict) else {"at": None, "what": "marked damaged"}


def translate(exc: BaseException, kind: str, name: str, doing: str) -> StoreError:
    """``exc`` (a driver or SQLAlchemy error) as a StoreError; raise it ``from exc``."""
    if is_damage(exc):
        return damaged(kind, name, describe(exc))
    return StoreError(f"{doing}: {describe(exc)}")


def failed(kind: str, name: str, doing: str, exc: BaseException) -> StoreError:
    """A session of the ``kind`` database ``name`` failed ``doing`` ("read", "write")
    with ``exc``: the one line every store gives; raise it ``from exc``. Damage was made
    ``CorruptStore`` by the engine's hook (``watch``) before it got here."""
    return StoreError(f"cannot {doing} the {kind} {name}: {describe(exc)}")


def loads(text: str | bytes, kind: str, name: str, where: str) -> Any:
    """Stored JSON, parsed; garbage there is damage, not a programming error."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise damaged(kind, name, f"{where} holds text that is not JSON") from exc


def watch(engine: Engine, kind: str) -> None:
    """Have every damage error raised through ``engine`` become a ``CorruptStore``."""
    name = database_name(engine.url)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if is_damage(context.original_exception):
            raise damaged(kind, name, describe(context.original_exception)) \
                from context.original_exception
