"""The outbox: journaled scans -> ``POST /scans/{eventId}``, at least once, never lost.

The journal is the queue. A drain takes the pending scans of each event oldest first, in
batches, and marks a batch ``sent`` only after the server answered 2xx. So:

- 408, 425, 429, 5xx, timeouts and dropped connections (``ServerUnavailable`` once the
  client's own retries are spent) leave the batch pending; the drain stops and reports, and
  the next one tries again. Nothing is lost.
- A 400 means something in the batch is unacceptable. The batch is bisected until the
  offending scans stand alone; each is parked as ``rejected`` with the server's answer (shown
  by ``gate status`` and ``gate journal``) and the rest is sent, so one bad record never
  blocks the queue. ``gate upload --requeue-rejected`` puts them back after a fix.
- Duplicates on the server can come only from a batch whose 2xx was lost (the connection
  dropped after the server stored it, or the process died before ``mark_sent`` committed):
  that batch is sent again. The API takes no idempotency key, so this is at-least-once.
- A journal that cannot be written (an SD card remounted read-only, a full disk) stops the
  upload: a scan the server acknowledged but the journal could not mark ``sent`` would be
  sent again on every drain, for ever. So each drain first checks that the journal takes a
  write, and a batch whose ``mark_sent`` still fails is held in memory: it is never sent
  again by this process, and is marked as soon as the journal can be written. One line
  says so when it starts; the worker backs off as for a dead server.
- Scans without an event (an unknown barcode at a gate serving several events) and reads
  the API cannot take (shorter than 8 characters, malformed) never enter the queue: the
  journal keeps them as ``local`` with the reason (see ``scanner.journal.journal``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from scanner.clock import Clock, utc_now
from scanner.config import DEFAULT_UPLOAD_BATCH
from scanner.errors import ApiError, BadRequest, NotFound, StoreError
from scanner.journal.journal import Journal, QueuedScan
from scanner.tickets import utc_iso

log = logging.getLogger("scanner.upload")


class ScanApi(Protocol):
    def post_scans(self, event_id: str, scans: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass
class UploadReport:
    sent: int = 0
    rejected: int = 0
    batches: int = 0          # requests the server accepted
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def payload(scan: QueuedScan) -> dict[str, Any]:
    """One scan as ``POST /scans`` takes it; ``ticketId`` only when the ticket is known."""
    doc: dict[str, Any] = {"barcode": scan.barcode, "scanned_at": scan.scanned_at,
                           "type": scan.result, "direction": scan.direction}
    if scan.ticket_id is not None:
        doc["ticketId"] = scan.ticket_id
    return doc


class _Stop(Exception):
    """The server is unavailable: end this drain, keep everything pending."""


class _Unmarked(Exception):
    """The server has a batch the journal could not mark sent: end this drain."""


class _SkipEvent(Exception):
    """The server does not know this event (404): keep its scans, go on with the others."""


class Outbox:
    def __init__(self, journal: Journal, api: ScanApi, batch_size: int = DEFAULT_UPLOAD_BATCH, *,
                 clock: Clock = utc_now) -> None:
        if batch_size < 1:
            raise ValueError(f"upload.batch_size: must be at least 1, got {batch_size}")
        self.journal = journal
        self.api = api
        self.batch_size = batch_size
        self._clock = clock
        # Scans the server acknowledged whose mark_sent failed: never sent again, marked
        # at the start of the next drain that finds the journal writable.
        self._unmarked: list[int] = []
        self._journal_failing = False  # one line when the journal fails, not one a drain

    def drain_once(self) -> UploadReport:
        """Send everything pending now; stop at the first unavailable server or at a
        journal that cannot record what was sent."""
        report = UploadReport()
        try:
            self._settle()
            for event_id in self.journal.pending_events():
                try:
                    while batch := self.journal.pending(event_id, self.batch_size):
                        self._send(event_id, batch, report)
                except _SkipEvent:
                    continue
        except (_Stop, _Unmarked):
            pass
        except StoreError as exc:
            self._journal_failed(report, f"upload stopped: {exc}")
        else:
            if self._journal_failing:
                log.info("the journal takes writes again: upload resumed")
            self._journal_failing = False
        return report

    def _settle(self) -> None:
        """Before sending anything: the journal takes a write, and what the server already
        has is marked sent (raises StoreError if not)."""
        if not self._unmarked:
            self.journal.check_writable()
            return
        self.journal.mark_sent(self._unmarked, utc_iso(self._clock()))
        self._unmarked = []

    def _journal_failed(self, report: UploadReport, message: str) -> None:
        report.errors.append(message)
        if not self._journal_failing:
            log.error("%s", message)
        self._journal_failing = True

    def _send(self, event_id: str, batch: list[QueuedScan], report: UploadReport) -> None:
        try:
            self.api.post_scans(event_id, [payload(scan) for scan in batch])
        except BadRequest as exc:
            if len(batch) == 1:
                answer = getattr(exc, "body", None) or str(exc)
                self.journal.mark_rejected(batch[0].seq, f"HTTP {exc.status}: {answer}")
                report.rejected += 1
                log.warning("scan %s rejected by the server: %s", batch[0].scan_id, answer)
                return
            middle = len(batch) // 2
            self._send(event_id, batch[:middle], report)
            self._send(event_id, batch[middle:], report)
            return
        except NotFound as exc:
            report.errors.append(f"{event_id}: {exc}")
            log.warning("upload of event %s skipped: %s", event_id, exc)
            raise _SkipEvent from exc
        except ApiError as exc:
            report.errors.append(f"{event_id}: {exc}")
            log.warning("upload paused: %s", exc)
            raise _Stop from exc
        report.batches += 1
        seqs = [scan.seq for scan in batch]
        try:
            report.sent += self.journal.mark_sent(seqs, utc_iso(self._clock()))
        except StoreError as exc:
            self._unmarked.extend(seqs)
            self._journal_failed(report, f"upload stopped: the server has {len(seqs)} scan(s) "
                                         f"the journal cannot mark sent ({exc}); they are "
                                         "not sent again")
            raise _Unmarked from exc
