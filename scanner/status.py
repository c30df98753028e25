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
    return {
        "gate_id": gate.config.gate_id,
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
