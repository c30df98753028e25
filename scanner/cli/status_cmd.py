"""``gate status``: what this gate holds and owes, read from the local store only.

It never touches the network or needs the token, so an operator can run it at a dead gate.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from scanner.app import Gate
from scanner.cli.main import load
from scanner.config import GateConfig
from scanner.printable import escape
from scanner.status import first_sync_words, gather


def render(doc: dict[str, Any]) -> str:
    # The default id names no gate: say it is unset rather than print "gate gate:".
    who = (f"gate {doc['gate_id']}" if doc["gate_id"] != GateConfig.gate_id
           else "this gate (gate_id not set)")
    lines = [f"{who}: {doc['tickets']} tickets in the store", *daemon_lines(doc["daemon"])]
    damage = doc.get("store_damaged")
    if damage:
        lines.append(f"STORE DAMAGED (found {damage['at'] or 'earlier'}: {damage['what']}): "
                     f"the gate still decides from what it can read; a ticket on a damaged "
                     f"page cannot be admitted. Run: gate db check, then gate db rebuild-store")
    syncing = doc.get("first_sync")
    if syncing:
        lines.append(f"FIRST SYNC: {first_sync_words(syncing)}: not ready until it ends")
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


_ONLINE = {True: "online", False: "offline (vivenu did not answer its last request)",
           None: "online: not asked yet"}
_CONNECTED = {True: "connected", False: "DISCONNECTED", None: "state unknown"}


def daemon_lines(daemon: dict[str, Any]) -> list[str]:
    """Whether ``gate run`` runs, is online and has its readers; what is wrong if not."""
    running = daemon.get("running")
    if running is None:
        return [f"daemon: unknown ({daemon['why']})"]
    if not running:
        seen = f", last seen {daemon['updated_at']}" if daemon.get("updated_at") else ""
        return [f"daemon: NOT RUNNING ({daemon['why']}{seen})"]
    readers = ", ".join(f"{name} {_CONNECTED[state]}"
                        for name, state in daemon.get("readers", {}).items()) or "none"
    lines = [f"daemon: running since {daemon['started_at']} (pid {daemon['pid']}), "
             f"{_ONLINE[daemon.get('online')]}; readers: {readers}"]
    if daemon.get("problems"):
        lines.append(f"  problems: {'; '.join(daemon['problems'])}")
    return lines


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Store, sync, journal and upload state."""
    with Gate(load(ctx)) as gate:
        doc = gather(gate)
    click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json else render(doc))
