"""``gate status``: what this gate holds and owes, read from the local store only.

It never touches the network or needs the token, so an operator can run it at a dead gate.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from scanner.app import Gate
from scanner.cli.main import load
from scanner.printable import escape


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
        "clock": gate.clock_guard.state().to_json(),
        "tickets": sum(counts.values()),
        "events": events,
        "queue": {
            "depth": journal["queue_depth"],
            "rejected": journal["rejected"],
            "local_only": journal["local_only"],
            "last_upload": journal["last_upload"],
        },
    }


def render(doc: dict[str, Any]) -> str:
    lines = [f"gate {doc['gate_id']}: {doc['tickets']} tickets in the store"]
    for event_id, ev in doc["events"].items():
        name = f" ({ev['name']})" if ev["name"] else ""
        lines.append(f"  {event_id}{name}: {ev['tickets']} tickets, inside {ev['inside']}, "
                     f"last sync {ev['last_sync'] or 'never'}")
        held = ev["held_deletions"]
        if held:
            lines.append(f"    HELD: {held['count']} of {held['stored']} tickets not deleted "
                         f"({held['why']}) since {held['at']}; "
                         f"to apply: gate sync --once --accept-deletions")
    queue = doc["queue"]
    lines.append(f"upload queue: {queue['depth']} pending, {queue['rejected']} rejected, "
                 f"{queue['local_only']} kept local, last upload {queue['last_upload'] or 'never'}")
    lines.append(doc["clock"]["summary"])
    # Event names come from the server: escaped, like everything shown from the store.
    return "\n".join(escape(line) for line in lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Store, sync, journal and upload state."""
    with Gate(load(ctx)) as gate:
        doc = gather(gate)
    click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json else render(doc))
