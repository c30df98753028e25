"""The gate's status document: what ``gate status --json`` prints and ``/api/status`` serves.

Read from the local store and journal only, so it answers at a dead gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from scanner.build import version
from scanner.db.faults import store_damage

if TYPE_CHECKING:
    from scanner.clock import Clock
    from scanner.clock_guard import ClockGuard
    from scanner.config import GateConfig
    from scanner.journal import Journal
    from scanner.mesh.link import Link
    from scanner.mesh.peer_journal import MeshStore
    from scanner.store.tickets import TicketStore
    from scanner.venue.channel import VenueWorker
    from scanner.venue.in_force import CommandBook


class StatusSources(Protocol):
    """What the document is read from (``scanner.app.Gate`` has each)."""

    config: GateConfig
    clock: Clock

    @property
    def store(self) -> TicketStore: ...
    @property
    def journal(self) -> Journal: ...
    @property
    def clock_guard(self) -> ClockGuard: ...
    @property
    def mesh_store(self) -> MeshStore | None: ...
    @property
    def venue_book(self) -> CommandBook | None: ...


def gather(gate: StatusSources, link: Link | None = None) -> dict[str, Any]:
    """The status document; ``tickets`` and ``events`` keep their documented shape.
    ``link``: the mesh link when it runs in this process (the daemon's page)."""
    counts: dict[str, int] = gate.store.counts_by_event()
    states: dict[str, dict[str, Any]] = gate.store.sync_states()
    names = {e["_id"]: e.get("name") for e in gate.store.events()}
    journal = gate.journal.stats()
    inside = gate.journal.inside_counts()
    event_ids = sorted(set(gate.config.events) | set(counts) | set(states) | set(inside))
    events = {}
    for event_id in event_ids:
        state = states.get(event_id, {})
        events[event_id] = {
            "name": names.get(event_id),
            "tickets": counts.get(event_id, 0),
            "last_sync": state.get("last_sync"),
            "last_full_sync": state.get("last_full"),
            "server_total": state.get("server_total"),
            "inside": inside.get(event_id, 0),
            "held_deletions": state.get("held_deletions"),
        }
    doc = {
        "gate_id": gate.config.gate_id,
        "first_sync": first_sync(states, gate.config.events),
        "version": version(),
        "clock": gate.clock_guard.state().to_json(),
        # Set once any command found the store damaged; the gate keeps deciding meanwhile.
        "store_damaged": store_damage(gate.config.db_url),
        "tickets": sum(counts.values()),
        "events": events,
        "queue": {
            "depth": journal["queue_depth"],
            "rejected": journal["rejected"],
            "local_only": journal["local_only"],
            "last_upload": journal["last_upload"],
        },
    }
    if (mesh := gate.mesh_store) is not None:  # [mesh] is configured
        doc["mesh"] = mesh_status(mesh, link, gate.clock)
    if (book := gate.venue_book) is not None:  # [mesh] supervisor_key is configured
        doc["venue"] = venue_status(book)
    doc["daemon"] = daemon_status(gate.config.db, gate.clock)
    return doc


def first_sync(states: dict[str, dict[str, Any]],
               configured: Sequence[str] = ()) -> dict[str, Any] | None:
    """The first full sync while it runs: ``done`` of ``total`` tickets (``total`` None
    until every event's listing said), over the events that never finished one; None once
    each has. A later reconcile is not a first sync: the store was whole before it."""
    pending = sorted({e for e in configured if e not in states}
                     | {e for e, s in states.items() if "last_full" in s and not s["last_full"]})
    if not pending:
        return None
    totals = [states.get(e, {}).get("full_total") for e in pending]
    return {"events": pending,
            "done": sum(int(states.get(e, {}).get("full_skip") or 0) for e in pending),
            "total": sum(int(t) for t in totals if t is not None)
            if all(t is not None for t in totals) else None}


def first_sync_words(syncing: dict[str, Any]) -> str:
    """"1200 of 48000 tickets (2 %)", or "1200 tickets so far" before every total is known."""
    done, total = syncing["done"], syncing["total"]
    if not total:
        return f"{done} tickets so far"
    return f"{done} of {total} tickets ({100 * done // total} %)"


def daemon_status(db: str, clock: Clock) -> dict[str, Any]:
    """What ``gate run`` last said of itself (``scanner.run.state_file``) beside the store
    ``db``: ``running`` (None when it cannot be told), ``online``, ``readers`` (name:
    connected), ``problems``."""
    from scanner.run.state_file import read_state, state_path

    return read_state(state_path(db), clock())


# A saved link state older than this is from a daemon that is no longer running.
MESH_STATE_STALE_S = 15.0  # three of the link's saves (scanner.mesh.link.STATE_INTERVAL)


def mesh_status(store: MeshStore, link: Link | None, clock: Clock) -> dict[str, Any]:
    """The venue mesh. Live from ``link`` when it runs in this process (the daemon, its
    kiosk); else what the daemon last saved in the journal database, with ``state_age_s``
    (``running`` false once that is older than ``MESH_STATE_STALE_S``). The kiosk's banner
    reads ``partitioned``, ``since``, ``peers_connected`` and ``conflicts``."""
    from scanner.tickets import parse_iso

    age: float | None = 0.0
    state: dict[str, Any] | None = None
    if link is not None and link.running:
        state = link.state() | {"running": True}
    elif (saved := store.link_state()) is not None:
        state, saved_at = saved
        age = round((clock() - parse_iso(saved_at)).total_seconds(), 1)
        state["running"] = bool(state.get("running")) and age <= MESH_STATE_STALE_S
    if state is None:
        age = None
        state = {"running": False, "peers": {g: {"held": store.held_max(g)}
                                             for g in store.origins() if g != store.gate_id}}
    return {
        "running": state["running"],
        "state_age_s": age,
        "connected": state.get("connected"),
        "deciding_alone": state.get("deciding_alone"),
        "partitioned": bool(state.get("partitioned")),
        "since": state.get("since"),
        "peers_connected": state.get("peers_connected"),
        "peers": state.get("peers", {}),
        "conflicts": store.conflict_count(),
        "dropped": state.get("dropped"),
        "venue": store.venue_counts(),
    }


def venue_status(book: CommandBook, worker: VenueWorker | None = None) -> dict[str, Any]:
    """The supervisors' orders this gate obeys (``CommandBook.state``), and whether the
    ``venue`` worker is connected when it runs in this process (None elsewhere)."""
    connected = worker.connected.is_set() if worker is not None and worker.running else None
    return book.state() | {"connected": connected}
