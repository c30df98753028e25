"""``gate zones``: every zone's count as this gate holds it; ``gate control``: the control
room (``scanner.app.control``)."""

from __future__ import annotations

import logging
from typing import Any

import click
import orjson

from scanner.cli.main import load
from scanner.printable import escape
from scanner.run.signals import stop_on_signals

log = logging.getLogger("scanner.control")


def render(zones: list[dict[str, Any]]) -> str:
    lines = []
    for z in zones:
        cap = "" if z["capacity"] is None else f" / {z['capacity']}"
        held = "" if z.get("held_here") is None else f", {z['held_here']} places held here"
        parent = "" if z["parent"] is None else f" (in {z['parent']})"
        lines.append(f"{z['name']}{parent}: {z['inside']}{cap} inside{held}")
    return escape("\n".join(lines))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON: what the control room's "
              "/api/zones gives.")
@click.pass_context
def zones(ctx: click.Context, as_json: bool) -> int:
    """Every zone's count (inside, capacity), from every gate's records this gate holds."""
    from scanner.app import Gate

    config = load(ctx)
    with Gate(config) as gate:
        found = gate.zones.snapshot(gate.clock())["zones"]
    click.echo(orjson.dumps(found).decode() if as_json else render(found))
    return 0


@click.command()
@click.pass_context
def control(ctx: click.Context) -> int:
    """Run the control room: every gate and zone on one page, until stopped."""
    from scanner.app.control import control_room
    from scanner.cli.logs import logging_off_thread

    config = load(ctx)
    with logging_off_thread():
        room = control_room(config)
        room.start()
        log.info("control room %s on %s/", config.gate_id, room.server.url)
        try:
            with stop_on_signals() as stop:
                while not stop.wait(1.0):
                    if not room.observer.running:
                        room.observer.start()  # a crash in the observer: start it again
        finally:
            room.stop()
    return 0
