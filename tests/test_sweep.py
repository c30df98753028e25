"""The reconciling sweep deletes in bounded chunks, each its own short transaction, so a
scan's write never queues behind the deletion of a whole event."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from test_journal_kit import make_ticket

from scanner.store.db import make_engine
from scanner.store.tickets import TicketStore


def test_the_sweep_commits_chunk_by_chunk_and_deletes_only_unseen_tickets(
        tmp_path: Path) -> None:
    store = TicketStore(make_engine(f"sqlite:///{tmp_path / 'gate.db'}"))
    store.upsert([make_ticket(n) for n in range(1050)], generation=1)
    store.upsert([make_ticket(n) for n in range(1000, 1050)], generation=2)  # seen again
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    assert store.sweep(make_ticket(0).event_id, 2, chunk=100) == 1000
    assert len(commits) == 11   # ten full chunks, then the one that found nothing left
    assert {t.id for t in store.iter_tickets()} == {make_ticket(n).id
                                                    for n in range(1000, 1050)}
    store.engine.dispose()
