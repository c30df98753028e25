"""``gate sim``: serve the vivenu simulator until SIGINT or SIGTERM."""

from __future__ import annotations

from pathlib import Path

import click

from scanner.errors import ConfigError
from scanner.run.signals import stop_on_signals
from scanner.secret_file import read_secret_text
from scanner.sim.server import DEFAULT_TOKEN
from scanner.sim.world import MAX_TICKETS

MAX_EVENTS = 1000


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port.")
@click.option("--seed", default=7, show_default=True, type=int, help="Same seed, same tickets.")
@click.option("--events", "n_events", default=2, show_default=True,
              type=click.IntRange(1, MAX_EVENTS))
@click.option("--tickets", default=1000, show_default=True, type=click.IntRange(0, MAX_TICKETS),
              help="Tickets per event.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"File holding the token clients must send (default: {DEFAULT_TOKEN!r}).")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0), help="Delay per request.")
@click.option("--error-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of requests answered 500/503.")
@click.option("--drop-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of connections closed unanswered.")
@click.option("--churn", default=0.0, type=click.FloatRange(0),
              help="Tickets sold or cancelled per second.")
@click.option("--mutate-per-page", default=0, type=click.IntRange(0),
              help="Tickets changed after each ticket page served.")
def sim(host: str, port: int, seed: int, n_events: int, tickets: int, token_file: Path | None,
        latency_ms: float, error_rate: float, drop_rate: float, churn: float,
        mutate_per_page: int) -> None:
    """Serve the built-in vivenu simulator (plain http: loopback is the intended use)."""
    from scanner.sim import Faults, SimServer, World

    token = DEFAULT_TOKEN
    if token_file is not None:
        try:
            token = read_secret_text(token_file, "--token-file")
        except ConfigError as exc:
            raise click.BadParameter(str(exc).removeprefix("--token-file: "),
                                     param_hint="--token-file") from None
        if not token:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    world = World(seed=seed, events=n_events, tickets_per_event=tickets)
    faults = Faults(seed=seed, latency_ms=latency_ms, error_rate=error_rate,
                    drop_rate=drop_rate, churn=churn, mutate_per_page=mutate_per_page)
    server = SimServer(world, faults, host=host, port=port, token=token)
    try:
        server.start()
    except OSError as exc:  # the port taken, a host that is not this machine's
        raise click.ClickException(f"cannot serve on {host}:{port}: "
                                   f"{exc.strerror or exc}") from None
    with stop_on_signals() as stop, server:
        shown = "from --token-file" if token_file else repr(token)
        click.echo(f"gate sim: serving {server.url} ({n_events} events x {tickets} tickets, "
                   f"seed {seed}, token {shown})", nl=True)
        # Wake up now and then: on some platforms Event.wait blocks signal delivery.
        while not stop.wait(0.5):
            pass
