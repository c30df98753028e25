"""``gate db``: find damage in the two databases and recover from it.

The ticket store is a copy of the server's data, so a damaged one is moved aside and
rebuilt by a full sync (``rebuild-store``). The journal is the only copy of this gate's
scans: it is never replaced, only checked; after an operator recovered or replaced it
on purpose, ``new-journal`` makes the store accept it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import orjson
from sqlalchemy.engine import make_url

from scanner.app import Gate
from scanner.cli.main import load
from scanner.db import faults
from scanner.db.engine import sqlite_file
from scanner.errors import ApiError, StoreError, SyncError
from scanner.printable import escape

# What moves aside with a SQLite store: its WAL and shared memory, and the damage marker.
STORE_COMPANIONS = ("-wal", "-shm", faults.DAMAGED_SUFFIX)


@click.group()
def db() -> None:
    """Check the ticket store and the journal; rebuild a damaged store."""


@db.command("check")
@click.option("--quick", is_flag=True, help="SQLite quick_check: skips index cross checks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per database.")
@click.pass_context
def check(ctx: click.Context, quick: bool, as_json: bool) -> int:
    """Integrity of every page (SQLite) and every stored JSON value; exit 1 if damaged."""
    from scanner.databases import check as check_databases

    config = load(ctx)
    findings = check_databases(config.db_url, config.journal_db_url, quick=quick)
    for finding in findings:
        click.echo(orjson.dumps(finding.to_json()).decode() if as_json
                   else escape(finding.line()))
    return 0 if all(f.ok for f in findings) else 1


@db.command("rebuild-store")
@click.pass_context
def rebuild_store(ctx: click.Context) -> int:
    """Move the ticket store aside and rebuild it by a full sync; the journal stays.

    Stop the gate's services first: a process holding the old file keeps writing to it.
    """
    config = load(ctx)
    path = sqlite_file(config.db_url)
    if path is None:
        raise StoreError(f"rebuild-store works on a SQLite file, not on "
                         f"{make_url(config.db_url).get_backend_name()}: restore the store "
                         f"from the server's backup, or empty its tables and run "
                         f"`gate sync --once`")
    journal = sqlite_file(config.journal_db_url)
    if journal is not None and journal.resolve() == path.resolve():
        raise StoreError(f"{path} holds the journal too: it cannot be moved aside; copy it "
                         f"and recover it with `sqlite3 {path} .recover`")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    moved = _move_aside(path, aside)
    click.echo(f"moved {', '.join(moved) or 'nothing (no store there)'} aside to {aside}*")
    with Gate(config) as gate:
        # A fresh store adopts the journal that is there (scanner.db.identity).
        gate.open(Gate.store, Gate.journal)
        click.echo(f"created an empty ticket store {path}; journal {config.journal_db_url} "
                   f"kept ({gate.journal.stats()['queue_depth']} scans waiting for upload)")
        try:
            reports = gate.syncer.run_once()
        except (ApiError, SyncError) as exc:
            click.echo(escape(f"full sync failed: {exc}; the store stays empty until "
                              f"`gate sync --once` succeeds"), err=True)
            return 1
    tickets = sum(r.total for r in reports)
    click.echo(f"full sync: {len(reports)} event(s), {tickets} ticket(s) stored")
    return 0


@db.command("new-journal")
@click.pass_context
def new_journal(ctx: click.Context) -> int:
    """Accept the journal at journal_db as the store's own (an empty one if none is there).

    For a deliberate fresh start, or after a journal was recovered to a new file: the store
    otherwise refuses a journal that is not the one it recorded.
    """
    from scanner.databases import IDENTITY, make_engine, make_journal_engine

    config = load(ctx)
    store = make_engine(config.db_url, journal_url=config.journal_db_url)
    try:
        journal = make_journal_engine(config.journal_db_url, store=store, accept=True)
        jid = IDENTITY.journal_id(journal)
        journal.dispose()
    finally:
        store.dispose()
    click.echo(f"journal {config.journal_db_url} ({jid}) is now the journal of {config.db_url}")
    return 0


def _move_aside(path: Path, aside: Path) -> list[str]:
    moved = []
    for suffix in ("", *STORE_COMPANIONS):
        source = path.with_name(path.name + suffix)
        if source.exists():
            try:
                source.rename(aside.with_name(aside.name + suffix))
            except OSError as exc:
                raise StoreError(f"cannot move {source} aside: {exc.strerror}") from exc
            moved.append(source.name)
    return moved
