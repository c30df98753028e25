"""``gate test outputs``: a technician's wiring test of the turnstile.

Each wired output (relay, green light, red light, buzzer) is switched on in turn, named
first, so the person at the turnstile can say which one moved; then the passage contact and
the fire-alarm loop are shown live as they change. Nothing is decided or journaled.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import click

from hardware.gpio import GpioOutputs
from scanner.cli.main import load
from scanner.run.signals import stop_on_signals

# How long a light or the buzzer stays on: long enough to see from the turnstile.
DEFAULT_ON_SECONDS = 1.0

Say = Callable[[str], object]


@click.group()
def test() -> None:
    """Wiring tests for a technician (nothing is decided or journaled)."""


@test.command()
@click.option("--pause", type=click.FloatRange(min=0), default=None, metavar="S",
              help="Wait S seconds between outputs instead of waiting for Enter.")
@click.option("--seconds", type=click.FloatRange(min=0), default=None, metavar="S",
              help="Watch the inputs for S seconds (default: until Ctrl-C).")
@click.pass_context
def outputs(ctx: click.Context, pause: float | None, seconds: float | None) -> int:
    """Pulse the relay, lights and buzzer one by one, then show the passage and fire
    inputs live."""
    from scanner.act.pins import open_outputs_or_fail

    config = load(ctx).outputs
    with open_outputs_or_fail(config) as pins:
        wait = (lambda: threading.Event().wait(pause)) if pause is not None else _enter
        exercise(pins, click.echo, wait, pulse_s=config.relay_pulse_ms / 1000)
        with stop_on_signals() as stop:
            watch(pins, click.echo, stop, seconds)
    return 0


def _enter() -> None:
    click.echo("  press Enter for the next one", err=True)
    # End of input goes on too (a script pipes nothing in); a bounded read, since input
    # from /dev/zero has no end of line at all.
    sys.stdin.readline(1024)


def exercise(pins: GpioOutputs, say: Say, wait: Callable[[], object], *,
             pulse_s: float, on_s: float = DEFAULT_ON_SECONDS) -> list[str]:
    """Switch each wired output on in turn, naming it first; returns their names."""
    wired = pins.outputs()
    if not wired:
        say("no outputs wired: set outputs.relay_pin (and green_pin, red_pin, buzzer_pin)")
    for i, name in enumerate(wired):
        pin = getattr(pins.pins, f"{name}_pin")
        length = pulse_s if name == "relay" else on_s
        say(f"{name} (pin {pin}): on for {length:g} s")
        pins.hold(name, length)
        if i < len(wired) - 1:
            wait()
    return list(wired)


def watch(pins: GpioOutputs, say: Say, stop: threading.Event,
          seconds: float | None = None) -> None:
    """Say each change of the passage contact and the fire-alarm loop until ``stop`` or
    ``seconds``."""
    if pins.passage is None and pins.fire_loop is None:
        say("no inputs wired (outputs.passage_pin, outputs.fire_alarm_pin): done")
        return
    if pins.passage is not None:
        def passed() -> None:
            say("passage contact: closed (a person passed)")

        pins.when_passage = passed
        say(f"passage contact (pin {pins.pins.passage_pin}): watching")
    if pins.fire_loop is not None:
        def fire(active: bool) -> None:
            say("fire-alarm loop: OPEN (alarm: relay held open)" if active
                else "fire-alarm loop: closed (normal)")

        pins.when_fire_alarm = fire
        state = "OPEN (alarm: relay held open)" if pins.fire_alarm else "closed (normal)"
        say(f"fire-alarm loop (pin {pins.pins.fire_alarm_pin}): {state}")
    say("watching the inputs; Ctrl-C ends" if seconds is None
        else f"watching the inputs for {seconds:g} s")
    stop.wait(seconds)
