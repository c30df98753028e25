"""The reconciling sweep deletes in bounded chunks, each its own short transaction, so a
scan's write never queues behind the deletion of a whole event; it walks the event by id
and finds what to delete by the seen marks (``scanner.store.seen``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kits.journal import make_ticket
from sqlalchemy import event

from scanner.databases import make_engine
from scanner.store.tickets import TicketStore


def _store(tmp_path: Path) -> TicketStore:
    return TicketStore(make_engine(f"sqlite:///{tmp_path / 'gate.db'}"))


def _record(store: TicketStore) -> tuple[list[int], list[int]]:
    """Commits, and the rows each DELETE of tickets removed."""
    commits: list[int] = []
    deleted: list[int] = []

    def after(_conn: Any, clause: Any, _multi: Any, _params: Any, _options: Any,
              result: Any) -> None:
        if str(clause).startswith("DELETE FROM tickets"):
            deleted.append(result.rowcount)

    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    event.listen(store.engine, "after_execute", after)
    return commits, deleted


def test_the_sweep_commits_chunk_by_chunk_and_deletes_only_unseen_tickets(
        tmp_path: Path) -> None:
    store = _store(tmp_path)
    event_id = make_ticket(0).event_id
    store.upsert([make_ticket(n) for n in range(1050)])
    store.upsert([make_ticket(n) for n in range(1000, 1050)], seen_by=event_id)
    commits, deleted = _record(store)
    assert store.sweep(event_id, chunk=100, walk=300) == 1000
    # Each chunk at most 100 tickets, each its own transaction; none without a deletion.
    assert sum(deleted) == 1000 and max(deleted) <= 100 and 0 not in deleted
    assert len(commits) == len(deleted) >= 10
    assert {t.id for t in store.iter_tickets()} == {make_ticket(n).id
                                                    for n in range(1000, 1050)}
    store.engine.dispose()


def test_a_sweep_with_nothing_unseen_writes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    event_id = make_ticket(0).event_id
    store.upsert([make_ticket(n) for n in range(700)], seen_by=event_id)
    commits, deleted = _record(store)
    assert store.sweep(event_id, chunk=100, walk=300) == 0
    assert (commits, deleted, store.count()) == ([], [], 700)
    store.engine.dispose()
