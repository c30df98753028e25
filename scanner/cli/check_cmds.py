"""``gate check`` and ``gate upload``: the gate's decision path and its outbox, from the
command line (its audit trail is ``gate journal``, in ``journal_cmds``).

``gate check`` goes through ``Gate.gatekeeper.check``, the same call the daemon makes: the
scan is decided, journaled durably and queued for upload. Its exit code is 0 when granted
and 1 when denied (a fault also exits 1, with an error line on stderr and nothing on stdout).

Whatever was journaled is shown with its control and bidirectional characters escaped
(``scanner.printable.escape``): a read or a server's answer cannot drive the terminal.
"""

from __future__ import annotations

import click
import orjson

from scanner.app import Gate
from scanner.cli.main import load
from scanner.printable import escape
from scanner.run.signals import stop_on_signals


class BadOption(click.ClickException):
    """A mistyped option value: one line, not click's usage block, and exit 2 like it."""

    exit_code = 2


@click.command()
@click.argument("barcode")
@click.option("--direction", type=click.Choice(["IN", "OUT"], case_sensitive=False),
              default="IN", show_default=True, help="Entering or leaving.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (documented shape).")
@click.option("--dry-run", is_flag=True,
              help="Decide and print only: nothing journaled or uploaded, the ticket unused.")
@click.pass_context
def check(ctx: click.Context, barcode: str, direction: str, as_json: bool,
          dry_run: bool) -> int:
    """Decide BARCODE exactly as the gate does: decide, journal, queue for upload.

    With --dry-run (an information scan, e.g. testing before doors open) the decision is
    only printed. Exit code 0: granted; 1: denied.
    """
    from scanner.decide.model import Direction

    with Gate(load(ctx)) as gate:
        keeper = gate.gatekeeper
        decide = keeper.preview if dry_run else keeper.check
        result = decide(barcode, Direction(direction.upper()))
    doc = result.to_json() | ({"dry_run": True} if dry_run else {})
    if as_json:
        click.echo(orjson.dumps(doc).decode())
    else:
        where = "offline" if doc["offline"] else "online"
        scan = "dry run, nothing journaled" if dry_run else f"scan {doc['scan_id']}"
        click.echo(escape(f"{doc['reason']}: {doc['message']}"))
        click.echo(f"  {scan} at {doc['scanned_at']}, {where}, "
                   f"{doc['latency_ms']:.2f} ms")
    return 0 if doc["granted"] else 1


@click.command()
@click.option("--once", is_flag=True, help="Drain the queue once and exit (else: keep going).")
@click.option("--requeue-rejected", is_flag=True,
              help="First put scans the server rejected back in the queue.")
@click.option("--json", "as_json", is_flag=True, help="With --once: the report as JSON.")
@click.pass_context
def upload(ctx: click.Context, once: bool, requeue_rejected: bool, as_json: bool) -> int:
    """Upload journaled scans to vivenu (exit 1 with --once if the server was unavailable)."""
    if as_json and not once:  # a script waiting for the report would wait for ever
        raise click.UsageError("--json needs --once")
    config = load(ctx)
    with Gate(config) as gate:
        if requeue_rejected:
            click.echo(f"requeued {gate.journal.requeue_rejected()} rejected scan(s)", err=True)
        if not once:  # gate run's upload job, alone, every upload.interval
            loop = gate.loop("upload")
            with stop_on_signals() as stop:
                return loop.run(stop)
        report = gate.outbox.drain_once()
        queue = gate.journal.stats()
    doc = {"sent": report.sent, "rejected": report.rejected, "batches": report.batches,
           "errors": report.errors, "queue_depth": queue["queue_depth"],
           "rejected_total": queue["rejected"], "local_only": queue["local_only"]}
    if as_json:
        click.echo(orjson.dumps(doc).decode())
    else:
        click.echo(f"sent {report.sent} scan(s) in {report.batches} request(s), "
                   f"{report.rejected} rejected; {queue['queue_depth']} still pending")
        for error in report.errors:
            click.echo(escape(f"error: {error}"), err=True)
    return 0 if report.ok else 1
