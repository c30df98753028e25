"""``gate kiosk set-pin``: the PIN stewards type on the kiosk page when the gate serves it
beyond loopback. Only a salted hash is written, to ``[web] pin_file`` (mode 0600)."""

from __future__ import annotations

import sys

import click

from scanner.cli.main import load
from scanner.kiosk.auth import MIN_PIN_LENGTH, write_pin_file
from scanner.kiosk.parts import DEFAULT_PIN_FILE


@click.group()
def kiosk() -> None:
    """The steward's kiosk page."""


@kiosk.command("set-pin")
@click.option("--pin-file", type=click.Path(dir_okay=False),
              help="Where to write the hash (default: [web] pin_file).")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the PIN from standard input.")
@click.pass_context
def set_pin(ctx: click.Context, pin_file: str | None, from_stdin: bool) -> None:
    """Set this gate's kiosk PIN (at least 4 characters)."""
    if pin_file is None:
        web = getattr(load(ctx), "web", None)
        pin_file = getattr(web, "pin_file", None) or DEFAULT_PIN_FILE
    if from_stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = click.prompt("New PIN", hide_input=True, confirmation_prompt=True)
    try:
        write_pin_file(pin_file, pin)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {pin_file}: {exc.strerror or exc}") from None
    click.echo(f"kiosk PIN set ({MIN_PIN_LENGTH}+ characters, hashed in {pin_file})")
