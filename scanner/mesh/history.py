"""A ticket's history as the union of every gate's records.

``MergedHistory.history`` is what the gatekeeper asks instead of ``Journal.history``: this
gate's journal (the truth for its own scans, even those the link has not stamped yet) and
the peers' records, in HLC order. A ticket that entered at gate A is then ``ALREADY_INSIDE``
at gate B, and the denial names gate A and A's time.
"""

from __future__ import annotations

from typing import Protocol

from scanner.decide.model import PastScan, ScanHistory
from scanner.mesh.peer_journal import MeshStore


class LocalHistory(Protocol):
    def history(self, ticket_id: str) -> ScanHistory: ...


def merge_history(local: ScanHistory, stamped: list[tuple[str, PastScan]],
                  own_gate: str) -> ScanHistory:
    """The union, in HLC order, of ``stamped`` (every gate's granted scans, own included,
    in HLC order) and the local scans the mesh has not stamped yet.

    The mesh stamps the journal in journal order, so this gate's stamped scans are the
    first ones of ``local``; the rest are newer than any stamp and go last.
    """
    own = sum(1 for origin, _ in stamped if origin == own_gate)
    return ScanHistory(tuple(scan for _, scan in stamped) + local.scans[own:])


class MergedHistory:
    """The venue's history: what the Gatekeeper is given as its ``history`` source."""

    def __init__(self, journal: LocalHistory, store: MeshStore) -> None:
        self._journal = journal
        self._store = store

    def history(self, ticket_id: str) -> ScanHistory:
        local = self._journal.history(ticket_id)
        return merge_history(local, self._store.history(ticket_id), self._store.gate_id)
