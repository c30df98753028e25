"""``gate journal``: the scan journal for audits, its export for the box office, and its
backup.

``gate journal`` prints every scan (text, ``--json`` lines or ``--csv``); ``gate journal
export`` writes the same rows, in a time range, to a file or stdout; both use one formatter
(``write_rows``), whose text is escaped (``scanner.printable.escape``) so a read or a
server's answer cannot drive a terminal or a spreadsheet. ``gate journal backup DEST``
copies the SQLite journal, consistent and verified, while ``gate run`` goes on writing it
(``scanner.journal.backup``); a journal on a database server is backed up by the server.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import click
import orjson

from scanner.cli.check_cmds import BadOption
from scanner.cli.main import load
from scanner.printable import escape

# Columns of the CSV and, in order, of the JSON lines; every column of the journal table,
# then who made an entry no read made, and why (``scanner.journal.supervision``).
JOURNAL_COLUMNS = ("seq", "scan_id", "scanned_at", "gate_id", "event_id", "ticket_id",
                   "barcode", "direction", "result", "reason", "message", "offline",
                   "latency_ms", "upload_state", "upload_error", "uploaded_at",
                   "actuated_at", "passed", "answers", "role", "session", "why", "note")
FORMATS = ("text", "json", "csv")


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, out: IO[str]) -> int:
    """Write journal rows (``Journal.entries``) as ``fmt``; returns how many."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(JOURNAL_COLUMNS)
    for count, row in enumerate(rows, 1):  # noqa: B007 (the count is the result)
        if fmt == "json":
            out.write(orjson.dumps({c: row[c] for c in JOURNAL_COLUMNS}).decode() + "\n")
        elif fmt == "csv":
            writer.writerow([_cell(row[c]) for c in JOURNAL_COLUMNS])
        else:
            out.write(_line(row) + "\n")
    return count


def _time_option(name: str, value: str | None) -> str | None:
    from scanner.tickets import normalize_iso

    if value is None:
        return None
    try:
        return normalize_iso(value)
    except ValueError:
        raise BadOption(f"{name}: not an ISO-8601 time: {value!r}") from None


@click.group(invoke_without_command=True)
@click.option("--since", metavar="ISO", help="Only scans at or after this time (ISO-8601).")
@click.option("--json", "fmt", flag_value="json", help="JSON lines, one scan per line.")
@click.option("--csv", "fmt", flag_value="csv", help="CSV with a header row.")
@click.pass_context
def journal(ctx: click.Context, since: str | None, fmt: str | None) -> None:
    """Print the scan journal, oldest first, for audits; export it or back it up."""
    from scanner.app import Gate

    if ctx.invoked_subcommand is not None:
        return
    since = _time_option("--since", since)
    with Gate(load(ctx)) as gate:
        write_rows(gate.journal.entries(since), fmt or "text", sys.stdout)


@journal.command()
@click.option("--since", metavar="ISO", help="Only scans at or after this time (ISO-8601).")
@click.option("--until", metavar="ISO", help="Only scans before this time (ISO-8601).")
@click.option("--json", "fmt", flag_value="json", help="JSON lines, one scan per line.")
@click.option("--csv", "fmt", flag_value="csv", default=True, help="CSV with a header row "
              "(the default).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced whole, or not at all); default: stdout.")
@click.pass_context
def export(ctx: click.Context, since: str | None, until: str | None, fmt: str,
           output: Path | None) -> int:
    """Every scan, or those in a time range, as CSV or JSON lines for the box office."""
    from scanner.app import Gate

    since, until = _time_option("--since", since), _time_option("--until", until)
    with Gate(load(ctx)) as gate:
        rows = gate.journal.entries(since, until)
        if output is None:
            count = write_rows(rows, fmt, sys.stdout)
        else:
            count = _write_file(output, lambda out: write_rows(rows, fmt, out))
    if output is not None:
        click.echo(f"exported {count} scan(s) to {output}", err=True)
    return 0


@journal.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx: click.Context, dest: Path) -> int:
    """Copy the journal to DEST (a file, or a folder to name the copy in), consistent while
    the gate runs, verified, and written whole or not at all."""
    from scanner.clock import utc_now
    from scanner.db.engine import sqlite_file
    from scanner.errors import BackupFailed
    from scanner.journal.backup import copy_journal, sqlite_files
    from scanner.journal.backup_dir import backup_name

    config = load(ctx)
    source = sqlite_file(config.journal_db_url)
    if source is None:
        raise BadOption(_not_a_file(config.journal_db_url))
    if dest.is_dir():
        dest = dest / backup_name(config.gate_id, utc_now())
    store = sqlite_file(config.db_url)
    if store is not None and dest.resolve() in sqlite_files(store.resolve()):
        raise BackupFailed(f"{dest} is the ticket store, not a place for the journal's copy")
    copied = copy_journal(source, dest)
    click.echo(escape(copied.line()))
    return 0


def _not_a_file(url: str) -> str:
    """Why a journal at ``url`` has no file to copy."""
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return "the journal is in memory: there is nothing to back up"
    return (f"the journal is on a {backend} server: back it up with the server's own tools "
            f"(pg_dump, say)")


def _write_file(path: Path, write: Callable[[IO[str]], int]) -> int:
    """``write(out)`` into ``path``, replaced whole or not at all: an export cut off never
    leaves half a file under the name."""
    from scanner.atomic import replacing
    from scanner.errors import GateError

    try:
        with replacing(path) as partial, partial.open("w", encoding="utf-8",
                                                     newline="") as out:
            return write(out)
    except OSError as exc:
        raise GateError(f"cannot write {path}: {exc.strerror or exc}") from exc


# A text cell starting with one of these is a formula to a spreadsheet (OWASP's CSV
# injection list): a barcode ``=HYPERLINK(...)`` must reach the box office as text.
FORMULA_STARTS = ("=", "+", "-", "@")


def _cell(value: Any) -> Any:
    """A CSV cell; text escaped, as an auditor opens the file in a terminal or a sheet, and
    quoted with a leading apostrophe where a sheet would take it for a formula."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    text = escape(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _line(row: dict[str, Any]) -> str:
    upload = row["upload_state"] + (f" ({row['upload_error']})" if row["upload_error"] else "")
    by = ""
    if row["role"]:  # an override, a steward's answer, an alarm: who, why, what it answers
        why = ": ".join(w for w in (row["why"], row["note"]) if w)
        by = (f" by {row['role']}" + (f" ({row['session']})" if row["session"] else "")
              + (f" for {row['answers']}" if row["answers"] else "") + (f": {why}" if why else ""))
    return escape(f"{row['seq']:>6} {row['scanned_at']} {row['gate_id']} {row['direction']:<3} "
                  f"{row['result']:<4} {row['reason']:<24} {row['barcode']} {upload}{by}")
