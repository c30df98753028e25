"""A verified copy of a SQLite journal, taken while the gate goes on writing it.

The journal is the only copy of the gate's scans, so a copy must be sound and whole:

- **Consistent while ``gate run`` writes.** SQLite's online backup API copies the file page
  by page, in steps. On its own it restarts whenever another connection commits between two
  steps, so under a busy gate it could copy forever. The copy is therefore taken inside one
  read transaction: in WAL mode that pins a snapshot (every scan committed before the copy
  began, none after) that the gate's commits never disturb, and a reader never blocks the
  gate's writer. The WAL grows meanwhile; the next checkpoint after the copy folds it in.
- **In steps, with a pause.** Each step copies ``STEP_PAGES`` pages, then the copy sleeps a
  moment: the gate's fsync'd scan commits share the disk and the GIL with it.
- **Verified, then atomic.** The copy is written beside its destination under a hidden
  partial name, turned into a single self-contained file (no WAL), checked with
  ``PRAGMA integrity_check`` and against the snapshot's scan count and last ``seq``, and
  only then renamed over the destination (``scanner.atomic.replacing``).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scanner.atomic import replacing
from scanner.errors import BackupFailed

# 256 pages of 4 KiB: 1 MiB per step.
STEP_PAGES = 256
# Seconds between steps: an SD card flushes a scan's commit in a few ms.
STEP_PAUSE = 0.002
# A WAL reader waits only while another opener recovers the WAL: as long as the gate's
# writers wait for each other (WRITER_BUSY_TIMEOUT_S).
OPEN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Copied:
    """One verified copy: where, what it holds, and what it cost."""

    path: Path
    scans: int
    last_seq: int | None      # the newest journal row in the copy (None: no scans yet)
    size: int                 # bytes
    seconds: float

    def line(self) -> str:
        return (f"{self.path}: {self.scans} scan(s), last seq {self.last_seq or 0}, "
                f"{self.size / 1e6:.1f} MB in {self.seconds:.2f} s, verified")


def copy_journal(source: Path, dest: Path, *, pages: int = STEP_PAGES,
                 pause: float = STEP_PAUSE,
                 clock: Callable[[], float] = time.monotonic) -> Copied:
    """Copy the SQLite journal ``source`` to the file ``dest``, verified; raise BackupFailed
    in one line (nothing left at ``dest`` from this attempt) if it cannot."""
    if not source.is_file():
        raise BackupFailed(f"no journal at {source}")
    if dest.resolve() in sqlite_files(source.resolve()):
        raise BackupFailed(f"{dest} is the journal itself")
    started = clock()
    try:
        with replacing(dest) as partial:
            scans, last = _snapshot_copy(source, partial, pages, pause)
        size = dest.stat().st_size
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot copy the journal to {dest}: {exc}") from exc
    except OSError as exc:
        raise BackupFailed(f"cannot write {dest}: {exc.strerror or exc}") from exc
    return Copied(dest, scans, last, size, clock() - started)


def sqlite_files(database: Path) -> set[Path]:
    """The SQLite file ``database`` and the files SQLite keeps beside it: a copy written
    over any of them would lose what it holds."""
    return {database, *(database.with_name(database.name + suffix)
                        for suffix in ("-wal", "-shm", "-journal"))}


def journal_size(source: Path) -> int:
    """An upper bound of a copy's size: the journal's file and its WAL."""
    return sum(path.stat().st_size for path in (source, source.with_name(source.name + "-wal"))
               if path.exists())


def _snapshot_copy(source: Path, partial: Path, pages: int, pause: float) -> tuple[int, int]:
    # isolation_level=None: the transactions below are the ones written, nothing implicit.
    src = sqlite3.connect(_source_uri(source), timeout=OPEN_TIMEOUT_S, isolation_level=None,
                          uri=True)
    try:
        src.execute("PRAGMA query_only=ON")  # a copy never writes the journal
        src.execute("BEGIN")
        # The first read starts the snapshot the whole copy is taken from.
        try:
            last, scans = src.execute("SELECT max(seq), count(*) FROM journal").fetchone()
        except sqlite3.OperationalError as exc:
            what = "is not a gate journal" if "no such" in str(exc) else "cannot be read"
            raise BackupFailed(f"{source} {what} ({exc})") from exc
        # Created with the journal's own mode: a copy holds the same personal data.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         stat.S_IMODE(source.stat().st_mode)))
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            src.backup(dst, pages=pages, progress=lambda *_: time.sleep(pause))
            # One self-contained file: a copy on a stick must open without a -wal beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
            _verify(dst, partial, scans, last)
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    return scans, last


def _source_uri(source: Path) -> str:
    """The journal's URI to copy from. On a read-only disk (an SD card the kernel remounted
    read-only after an error, the moment its journal most needs copying off) SQLite cannot
    make the -shm file a WAL reader needs: the journal is read as immutable there, which is
    sound since nothing can write it, unless its WAL holds commits the file lacks."""
    uri = source.absolute().as_uri()
    wal = source.with_name(source.name + "-wal")
    try:
        read_only = bool(os.statvfs(source).f_flag & os.ST_RDONLY)
        unfolded = wal.exists() and wal.stat().st_size > 0
    except OSError:
        return uri
    if read_only and unfolded:
        raise BackupFailed(f"{source} is on a read-only disk with scans still in {wal.name}: "
                           f"copy {source.name} with its -wal and -shm to a writable disk and "
                           f"back up that copy")
    return f"{uri}?immutable=1" if read_only else uri


def _verify(dst: sqlite3.Connection, partial: Path, scans: int, last: int | None) -> None:
    problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupFailed(f"the copy {partial} failed its integrity check: {problems[0]}")
    found = dst.execute("SELECT max(seq), count(*) FROM journal").fetchone()
    if tuple(found) != (last, scans):
        raise BackupFailed(f"the copy {partial} holds {found[1]} scan(s) up to seq "
                           f"{found[0]}, the journal {scans} up to {last}")
