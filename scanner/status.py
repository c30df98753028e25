"""The gate's status document: what ``gate status --json`` prints and ``/api/status`` serves.

Read from the local store and journal only, so it answers at a dead gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanner.store.faults import store_damage

if TYPE_CHECKING:
    from scanner.app import Gate


def gather(gate: Gate) -> dict[str, Any]:
    """The status document; ``tickets`` and ``events`` keep their documented shape."""
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
    if gate.config.mesh.url:
        doc["mesh"] = mesh_status(gate)
    return doc


def mesh_status(gate: Gate) -> dict[str, Any]:
    """The venue mesh: live facts from the link when it runs in this process (the daemon,
    its kiosk), else what the journal database holds (``running`` false, live facts None)."""
    store = gate.mesh_store
    assert store is not None  # [mesh] is configured
    link = type(gate).mesh_link.built(gate)
    live = link.state() if link is not None and link.running else None
    return {
        "running": live is not None,
        "connected": live["connected"] if live else None,
        "deciding_alone": live["deciding_alone"] if live else None,
        "peers_connected": live["peers_connected"] if live else None,
        "peers": live["peers"] if live else {g: {"held": store.held_max(g)}
                                             for g in store.origins() if g != store.gate_id},
        "conflicts": store.conflict_count(),
        "dropped": live["dropped"] if live else None,
        "venue": store.venue_counts(),
    }
