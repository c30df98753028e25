"""``gate venue``: the supervisor's keys and the commands every gate obeys.

Every command but ``keygen`` signs with ``--key`` (the supervisor's private key) and
reaches the broker through the ``[mesh]`` of the configuration it runs with (its
credentials those of the broker's supervisor user).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from scanner.cli.main import load
from scanner.errors import ConfigError

KEY_HELP = "The supervisor's private key (gate venue keygen wrote it)."


@click.group()
def venue() -> None:
    """Venue-wide commands every gate obeys, signed with the supervisor's key."""


@venue.command()
@click.argument("folder", type=click.Path(file_okay=False))
def keygen(folder: str) -> int:
    """Write FOLDER/supervisor.key (private, 0600) and FOLDER/supervisor.pub (for gates)."""
    from scanner.venue.signing import keygen as make_keys

    private, public = make_keys(folder)
    click.echo(f"private key: {private} (keep it on this machine only)")
    click.echo(f"public key:  {public} (copy it to every gate: [mesh] supervisor_key)")
    return 0


def _key_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
                        help=KEY_HELP)(f)


def _where_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--gate", "gate", help="One gate (its gate_id).")(f)
    return click.option("--zone", "zone",
                        help="Every gate of one zone and of the zones inside it.")(f)


def _send(ctx: click.Context, key_file: str, kind: str, scope: str, target: str = "",
          reason: str = "") -> int:
    from scanner.mesh.broker_settings import MeshSettings
    from scanner.venue.command import Kind, Refused, Scope
    from scanner.venue.issue import send
    from scanner.venue.signing import Signer

    config = load(ctx)
    if not config.mesh.url:
        raise ConfigError("mesh.url: required to send venue commands (the gates' broker)")
    try:
        command = send(MeshSettings.from_config(config.mesh), config.zones, Signer(key_file),
                       Kind(kind), Scope(scope), target, reason=reason, zone_key="--zone")
    except Refused as exc:  # a command no gate would take: said before anything is sent
        raise click.UsageError(str(exc)) from None
    click.echo(f"sent: {command.describe()}")
    return 0


def _scope(zone: str | None, gate: str | None) -> tuple[str, str]:
    if zone and gate:
        raise click.UsageError("give --zone or --gate, not both")
    if zone:
        return "zone", zone
    if gate:
        return "gate", gate
    return "venue", ""


def _mode_command(kind: str, help_text: str) -> None:
    @venue.command(name=kind.replace("_", "-"), help=help_text)
    @_key_option
    @_where_options
    @click.option("--reason", default="", help="A line for the log and the control room.")
    @click.pass_context
    def command(ctx: click.Context, key_file: str, zone: str | None, gate: str | None,
                reason: str) -> int:
        return _send(ctx, key_file, kind, *_scope(zone, gate), reason=reason)


_mode_command("stop_entry", "Stop entry at one gate, a zone or everywhere (exit stays open).")
_mode_command("resume", "Undo stop-entry, free-egress or lockdown for the same gates.")
_mode_command("free_egress", "Hold every relay open for an evacuation; entry is refused.")
_mode_command("lockdown", "Refuse every scan, in and out, until resume.")


@venue.command()
@_key_option
@click.argument("ticket")
@click.option("--reason", required=True, help="What the steward reads (banned, lost card).")
@click.pass_context
def block(ctx: click.Context, key_file: str, ticket: str, reason: str) -> int:
    """Refuse entry to TICKET (a barcode or a ticket id) at every gate."""
    return _send(ctx, key_file, "block", "ticket", ticket, reason)


@venue.command()
@_key_option
@click.argument("ticket")
@click.option("--reason", default="", help="A line for the log.")
@click.pass_context
def unblock(ctx: click.Context, key_file: str, ticket: str, reason: str) -> int:
    """Undo a block of TICKET (the same barcode or ticket id)."""
    return _send(ctx, key_file, "unblock", "ticket", ticket, reason)
