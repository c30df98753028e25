"""``gate run``: the turnstile daemon (under systemd: ``systemd/gate-scanner.service``).

Builds every part through the composition root, opens what a decision needs (so a bad
config, store or pin is one line and exit 2 or 1, before READY=1), then supervises the
readers, lanes, jobs and act stage until SIGTERM or SIGINT. Exit 0 after a clean stop,
1 when a decision lane could not be kept alive (systemd restarts the service). Logs go to
stderr, one line per event, which systemd puts in the journal.
"""

from __future__ import annotations

import logging

import click

from scanner.cli.logs import logging_off_thread
from scanner.cli.main import load
from scanner.run.signals import stop_on_signals

log = logging.getLogger("scanner.run")


@click.command()
@click.pass_context
def run(ctx: click.Context) -> int:
    """Run the gate: read, decide, open the turnstile, sync and upload, until stopped."""
    from scanner.app import Gate
    from scanner.app.daemon import open_daemon
    from scanner.build import version

    config = load(ctx)
    with logging_off_thread(), Gate(config) as gate:
        daemon = open_daemon(gate)
        readers = ", ".join(f"{w.reader} ({w.config.source} {w.config.direction} lane "
                            f"{w.config.lane})" for w in gate.reader_workers)
        # The first line names the version, whatever follows.
        log.info("gate-scanner %s starting: gate %s, %s", version(), config.gate_id,
                 readers or "no readers")
        if not readers:  # said once: a gate not set up yet still serves its page and syncs
            log.warning("gate %s has no readers (readers = []): it decides nothing until "
                        "gate setup adds one; the kiosk page and the sync keep running",
                        config.gate_id)
        with stop_on_signals() as stop:
            code = daemon.run(stop)
        log.info("gate %s stopped%s", config.gate_id,
                 "" if code == 0 else f" (exit {code}: a lane could not be kept alive)")
    return code
