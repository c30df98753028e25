"""``gate sync``, ``gate events`` and ``gate tickets``: fill the store and look into it.

Everything is built by ``scanner.app.Gate``; faults are GateErrors that ``main`` prints as
one line with a non-zero exit.
"""

from __future__ import annotations

import sys

import click
import orjson

from scanner.app import Gate
from scanner.cli.main import load
from scanner.run.signals import stop_on_signals
from scanner.sync.collector import settle_for_sync


@click.command()
@click.option("--once", is_flag=True, help="One run over every event, then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: the reports as JSON.")
@click.option("--accept-deletions", is_flag=True,
              help="With --once: apply the deletions `gate status` shows as held.")
@click.pass_context
def sync(ctx: click.Context, once: bool, as_json: bool, accept_deletions: bool) -> int:
    """Sync tickets and device settings into the store (loops until SIGTERM)."""
    if accept_deletions and not once:
        # A standing consent would defeat the guard: every later collapse would apply.
        raise click.UsageError("--accept-deletions needs --once")
    if as_json and not once:  # a script waiting for the report would wait for ever
        raise click.UsageError("--json needs --once")
    with Gate(load(ctx)) as gate:
        # The loop is gate run's sync job, alone: built (and its config checked) up front.
        loop = None if once else gate.loop("sync")
        # The collector sees only what the sync allocates, a page at a time.
        settle_for_sync()
        if loop is None:
            reports = gate.syncer.run_once(accept_deletions=accept_deletions)
            if as_json:
                click.echo(orjson.dumps([r.__dict__ for r in reports]).decode())
            return 0
        # SIGTERM (systemd stop) and Ctrl-C end the loop after the page being written.
        with stop_on_signals() as stop:
            return loop.run(stop)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_context
def events(ctx: click.Context, as_json: bool) -> int:
    """List the events this device may scan (asks the server and stores the answer)."""
    with Gate(load(ctx)) as gate:
        docs = gate.syncer.refresh_events()
        counts = gate.store.counts_by_event()
    if as_json:
        click.echo(orjson.dumps(docs).decode())
        return 0
    width = max([len("EVENT"), *(len(d["_id"]) for d in docs)])
    click.echo(f"{'EVENT':<{width}}  {'TICKETS':>8}  NAME")
    for doc in docs:
        click.echo(f"{doc['_id']:<{width}}  {counts.get(doc['_id'], 0):>8}  {doc['name']}")
    return 0


@click.command()
@click.option("--event", "event_id", help="Only this event's tickets.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line with vivenu's field names.")
@click.pass_context
def tickets(ctx: click.Context, event_id: str | None, as_json: bool) -> int:
    """Print the local store's tickets (streamed: constant memory on any store size)."""
    out = sys.stdout.buffer
    with Gate(load(ctx)) as gate:
        for ticket in gate.store.iter_tickets(event_id):
            if as_json:
                out.write(orjson.dumps(ticket.to_api()) + b"\n")
            else:
                seat = "/".join(p for p in (ticket.area, ticket.row, ticket.seat) if p)
                out.write(f"{ticket.id}  {ticket.barcode}  {ticket.event_id}  "
                          f"{ticket.status:<15}  {ticket.ticket_name}  {seat}\n".encode())
    out.flush()
    return 0
