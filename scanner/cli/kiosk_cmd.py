"""``gate kiosk set-pin``: the PIN stewards type on the kiosk page when the gate serves it
beyond loopback. Only a salted hash is written, to ``[web] pin_file`` (mode 0600);
``--supervisor`` sets the supervisor's PIN (overrides) in ``[web] supervisor_pin_file``."""

from __future__ import annotations

import sys

import click

from scanner.cli.main import load
from scanner.kiosk.auth import MIN_PIN_LENGTH, PinHash, write_pin_file
from scanner.kiosk.parts import DEFAULT_PIN_FILE, DEFAULT_SUPERVISOR_PIN_FILE

# The longest line --stdin reads as a PIN.
MAX_PIN_INPUT = 1024


@click.group()
def kiosk() -> None:
    """The steward's kiosk page."""


@kiosk.command("set-pin")
@click.option("--pin-file", type=click.Path(dir_okay=False),
              help="Where to write the hash (default: [web] pin_file).")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the PIN from standard input.")
@click.option("--supervisor", is_flag=True,
              help="Set the supervisor's PIN (may override denials) instead.")
@click.pass_context
def set_pin(ctx: click.Context, pin_file: str | None, from_stdin: bool,
            supervisor: bool) -> None:
    """Set this gate's kiosk PIN (at least 4 characters)."""
    web = getattr(load(ctx), "web", None)
    steward_file = getattr(web, "pin_file", None) or DEFAULT_PIN_FILE
    supervisor_file = getattr(web, "supervisor_pin_file", None) or DEFAULT_SUPERVISOR_PIN_FILE
    if pin_file is None:
        pin_file = supervisor_file if supervisor else steward_file
    if from_stdin:
        # A bounded line (stdin from /dev/zero or a binary file has no end of line at
        # all), decoded here: a strict UTF-8 stdin would raise on bytes that are not UTF-8
        # before the PIN's own check could refuse them. Four bytes a character at most.
        line = sys.stdin.buffer.readline(4 * MAX_PIN_INPUT + 1).decode("utf-8",
                                                                       "surrogateescape")
        if len(line.rstrip("\n")) > MAX_PIN_INPUT:
            raise click.UsageError(f"a PIN is at most {MAX_PIN_INPUT} characters")
        pin = line.strip()
    else:
        pin = click.prompt("New PIN", hide_input=True, confirmation_prompt=True)
    other = PinHash.load(steward_file if supervisor else supervisor_file)
    if other is not None and other.matches(pin):
        # One PIN for both would make every steward a supervisor.
        raise click.UsageError("the steward's and the supervisor's PINs must differ")
    try:
        write_pin_file(pin_file, pin)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {pin_file}: {exc.strerror or exc}") from None
    role = "supervisor" if supervisor else "kiosk"
    click.echo(f"{role} PIN set ({MIN_PIN_LENGTH}+ characters, hashed in {pin_file})")
