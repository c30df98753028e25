"""The daemon's periodic jobs, in the scheduler's shape (``scanner.run.schedule.Job``).

- ``sync``: every event once (the syncer picks delta, or the reconciling full sync when it
  is due, or resumes a cut-off one), every ``[run] sync_interval`` or, without one, the
  ``/me`` ``ticketSyncInterval`` clamped to 5..900 s. When it succeeds again after failing
  (the network is back) it kicks the upload at once.
- ``settings``: ``/me`` again, so a changed ticketSyncInterval retimes the sync and a changed
  scan configuration reaches the policy between syncs.
- ``upload``: drain the journal's queue every ``upload.interval``.
- ``backup``: with ``[journal] backup_dir``, a verified copy of the journal once a day at
  ``backup_at`` (``scanner.journal.backup_dir.DailyBackup``), asked every minute whether one
  is due; a folder that cannot take it is one WARNING line, never a fault of the gate.

Each returns whether it succeeded; a failure is one log line and the scheduler backs off.
Each also tells ``report`` whether it reached the API (the kiosk's online badge): an upload
with nothing to send asked nothing, so it says nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from scanner.config import MAX_RUN_SYNC_INTERVAL, MIN_RUN_SYNC_INTERVAL
from scanner.errors import GateError
from scanner.run.schedule import Job

if TYPE_CHECKING:
    from scanner.sync.syncer import EventReport
    from scanner.upload.outbox import Outbox

log = logging.getLogger("scanner.run")

Report = Callable[[bool], object]  # True: the API answered; False: it could not be reached


class RunsSync(Protocol):
    """A Syncer, or the same run in a child process (``scanner.sync.process``)."""

    def run_once(self, stop: threading.Event | None = None, *,
                 accept_deletions: bool = False) -> list[EventReport]: ...


def _ignore(_reached: bool) -> None:
    return None

SETTINGS_EVERY = 300.0
# A run longer than this counts as hung (its heartbeat stops): every request has its own
# timeouts, so only a stuck thread gets here. A full sync of a big event takes minutes.
SYNC_TIMEOUT = 1800.0
SETTINGS_TIMEOUT = 300.0
UPLOAD_TIMEOUT = 600.0
BACKUP_EVERY = 60.0
# A copy reads the whole journal and verifies it on a slow stick: minutes for a big one.
BACKUP_TIMEOUT = 1800.0


def sync_interval(override: float | None, me: dict[str, Any] | None, fallback: float) -> float:
    """The delta-sync period: the override, else ``/me``'s ticketSyncInterval, else
    ``fallback``; clamped to the documented 5..900 s."""
    every: Any = override
    if every is None and me:
        every = (me.get("deviceSettings") or {}).get("ticketSyncInterval")
    if not isinstance(every, int | float) or isinstance(every, bool) or every <= 0:
        every = fallback
    return float(min(max(every, MIN_RUN_SYNC_INTERVAL), MAX_RUN_SYNC_INTERVAL))


def sync_job(syncer: RunsSync, stop: Callable[[], threading.Event], every: float,
             on_synced: Callable[[], object] = lambda: None, report: Report = _ignore) -> Job:
    """``stop()`` is the event that ends a run early (the scheduler's own, set at SIGTERM:
    a full sync in flight stops after the page it writes and resumes at the next start)."""

    def run() -> bool:
        from scanner.sync.syncer import Stopped

        try:
            syncer.run_once(stop())
        except Stopped:
            return True
        except GateError as exc:
            log.warning("sync: %s", exc)
            report(False)
            return False
        report(True)
        on_synced()
        return True

    return Job("sync", run, every, SYNC_TIMEOUT, kicks=("upload",))


def settings_job(api: Any, save: Callable[[dict[str, Any]], None],
                 on_settings: Callable[[dict[str, Any]], None], report: Report = _ignore) -> Job:
    def run() -> bool:
        try:
            me = api.me()
        except GateError as exc:
            log.warning("device settings: %s", exc)
            report(False)
            return False
        report(True)
        try:
            save(me)
        except GateError as exc:
            log.warning("device settings: %s", exc)
            return False
        on_settings(me)
        return True

    # The first sync fetches /me itself; this one is for between syncs.
    return Job("settings", run, SETTINGS_EVERY, SETTINGS_TIMEOUT, at_start=False)


def upload_job(outbox: Outbox, every: float, report: Report = _ignore) -> Job:
    def run() -> bool:
        done = outbox.drain_once()
        if done.sent or done.rejected:
            log.info("uploaded %d scan(s), %d rejected", done.sent, done.rejected)
        if done.errors or done.batches:
            report(done.batches > 0 and not done.errors)
        return done.ok

    return Job("upload", run, every, UPLOAD_TIMEOUT)


def backup_job(backup: Callable[[], bool]) -> Job:
    """``backup`` is a ``DailyBackup``; the first look is a minute after start, when the
    gate is deciding already."""
    return Job("backup", backup, BACKUP_EVERY, BACKUP_TIMEOUT, at_start=False)
