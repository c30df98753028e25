"""The daily copies in ``[journal] backup_dir`` (a USB stick): when one is due, whether the
folder can take it, and how many stay.

A copy is due once a day at ``backup_at`` (local time): the job asks every minute whether
the folder already holds a copy taken since the last such moment, so a gate that was off
or had no stick at that time makes its copy as soon as it can, and a clock step or a
change of daylight saving time moves nothing. Copies are named
``<gate_id>-journal-<UTC time>.db``; only names of that shape, of this gate, are ever
counted or removed, so other files on the stick and other gates' copies are left alone.

Before copying, the folder is checked: missing (no stick), on the journal's own disk (the
stick is not mounted and its mount point is a plain folder of the SD card), read-only, or
short of space for the copy plus ``SPARE_BYTES``. Each is one WARNING line, once per day's
copy and cause, never an exception: a backup never stops a gate.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path

from scanner.atomic import PARTIAL_SUFFIX
from scanner.clock import Clock, last_moment
from scanner.errors import BackupFailed
from scanner.journal.backup import Copied, copy_journal, journal_size

log = logging.getLogger("scanner.journal")

STAMP = "%Y%m%dT%H%M%SZ"
# Room left on the stick beyond the copy itself, so a copy never fills it to the last byte.
SPARE_BYTES = 16 * 1024 * 1024
# A copy that failed (not the folder's checks, which are cheap) is tried again after this:
# a damaged journal must not be read whole every minute.
RETRY_COPY_AFTER = timedelta(hours=1)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class BackupPlan:
    """Where the daily copies go, how many stay, and when (``[journal]``)."""

    folder: Path
    keep: int
    at: time
    same_disk: bool = False   # allow a folder on the journal's own disk


def prefix(gate_id: str) -> str:
    return f"{_UNSAFE.sub('_', gate_id)}-journal-"


def backup_name(gate_id: str, when: datetime) -> str:
    return f"{prefix(gate_id)}{when.astimezone(UTC).strftime(STAMP)}.db"


def backups(folder: Path, gate_id: str) -> list[tuple[datetime, Path]]:
    """This gate's copies in ``folder``, oldest first."""
    pattern = re.compile(re.escape(prefix(gate_id)) + r"(\d{8}T\d{6}Z)\.db")
    found = []
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            stamp = datetime.strptime(match[1], STAMP).replace(tzinfo=UTC)
            found.append((stamp, path))
    return sorted(found)


def prune(folder: Path, gate_id: str, keep: int) -> int:
    """Remove all but the newest ``keep`` copies of this gate, and its copies cut off
    half-written (a power cut, a pulled stick); returns how many copies went."""
    own = prefix(gate_id)
    for path in folder.glob(f".{own}*{PARTIAL_SUFFIX}"):
        path.unlink(missing_ok=True)
    old = backups(folder, gate_id)[:-keep]
    for _stamp, path in old:
        path.unlink(missing_ok=True)
    return len(old)


def folder_problem(folder: Path, journal: Path, needed: int, *,
                   same_disk: bool = False) -> tuple[str, str] | None:
    """Why ``folder`` cannot take a copy of ``needed`` bytes now, as (cause, one line)."""
    try:
        if not folder.exists():
            return "missing", f"{folder} is missing (is the stick plugged in?)"
        if not folder.is_dir():
            return "missing", f"{folder} is not a folder"
        if not same_disk and folder.stat().st_dev == journal.stat().st_dev:
            return "unmounted", (f"{folder} is on the journal's own disk (is the stick "
                                 f"mounted? [journal] backup_same_disk = true allows it)")
        disk = os.statvfs(folder)
    except OSError as exc:
        return "unreadable", f"cannot read {folder}: {exc.strerror or exc}"
    if disk.f_flag & os.ST_RDONLY:
        return "read-only", f"{folder} is read-only"
    free = disk.f_bavail * disk.f_frsize
    if free < needed + SPARE_BYTES:
        return "full", (f"{folder} has {free / 1e6:.1f} MB free, the copy needs "
                        f"{needed / 1e6:.1f} MB and {SPARE_BYTES / 1e6:.0f} MB to spare")
    return None


class DailyBackup:
    """The backup job's body: a verified copy once a day, ``plan.keep`` kept. Returns
    whether the folder is fine (a copy made, or one already there)."""

    def __init__(self, journal: Path, gate_id: str, plan: BackupPlan, *, clock: Clock,
                 zone: tzinfo, copy: Callable[[Path, Path], Copied] = copy_journal) -> None:
        self.journal = journal
        self.gate_id = gate_id
        self.plan = plan
        self.clock = clock
        self.zone = zone
        self._copy = copy
        self._done: datetime | None = None                 # the moment last copied for
        self._warned: tuple[datetime, str] | None = None   # (moment, cause) last said
        self._retry_at: datetime | None = None

    def __call__(self) -> bool:
        now = self.clock()
        moment = last_moment(now, self.plan.at, self.zone)
        if self._done == moment:
            return True
        folder = self.plan.folder
        problem = folder_problem(folder, self.journal, journal_size(self.journal),
                                 same_disk=self.plan.same_disk)
        if problem is not None:
            return self._skip(moment, *problem)
        try:
            if any(stamp >= moment for stamp, _ in backups(folder, self.gate_id)):
                self._done = moment
                return True
        except OSError as exc:
            return self._skip(moment, "unreadable", f"cannot read {folder}: {exc.strerror}")
        if self._retry_at is not None and now < self._retry_at:
            return False
        try:
            copied = self._copy(self.journal, folder / backup_name(self.gate_id, now))
            removed = prune(folder, self.gate_id, self.plan.keep)
        except (BackupFailed, OSError) as exc:
            self._retry_at = now + RETRY_COPY_AFTER
            return self._skip(moment, "copy", str(exc) if isinstance(exc, BackupFailed)
                              else f"{folder}: {exc.strerror}")
        self._done, self._warned, self._retry_at = moment, None, None
        log.info("journal backup: %s; %d older removed, %d kept", copied.line(), removed,
                 len(backups(folder, self.gate_id)))
        return True

    def _skip(self, moment: datetime, cause: str, line: str) -> bool:
        if self._warned != (moment, cause):  # once per day's copy and cause
            log.warning("journal backup skipped: %s", line)
            self._warned = (moment, cause)
        return False
