"""``gate conflicts``: admissions of one ticket on both sides of a network split."""

from __future__ import annotations

import click
import orjson

from scanner.app import Gate
from scanner.cli.main import load
from scanner.printable import escape


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per conflict.")
@click.pass_context
def conflicts(ctx: click.Context, as_json: bool) -> int:
    """List tickets admitted at two gates that could not see each other (both uploaded)."""
    from scanner.mesh.peer_journal import MeshStore

    config = load(ctx)
    with Gate(config) as gate:
        found = MeshStore(gate.journal_engine, config.gate_id).conflicts()
    for conflict in found:
        if as_json:
            click.echo(orjson.dumps(conflict.to_json()).decode())
            continue
        a, b = conflict.first, conflict.second
        # A record is its origin's word, a peer's too: its text is escaped, never run.
        click.echo(escape(f"{a.barcode} (ticket {conflict.ticket_id}): in at {a.gate} "
                          f"{a.scanned_at} and at {b.gate} {b.scanned_at}"))
    if not as_json:
        click.echo(f"{len(found)} conflict(s)", err=True)
    return 0
