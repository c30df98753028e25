"""``gate scan``: read codes from a camera, a handheld or stdin and decide each one.

Prints one line per decision (``GRANTED  green  ABCD1234  Welcome (VIP) 0.21 ms``) and one
per rejected read (journaled too, as MALFORMED_READ), on stdout, control characters
escaped; device news (vanished, reopened) goes to stderr. Runs until
SIGINT or SIGTERM, or end of input for stdin. The decision is ``gate.gatekeeper.check``,
the same call the daemon makes, so every scan is journaled and queued for upload.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from scanner.cli.main import load
from scanner.config import ReaderConfig
from scanner.errors import ConfigError
from scanner.printable import escape
from scanner.read.hygiene import Payload, Rejected
from scanner.read.pipeline import Stats, latency_ms
from scanner.read.registry import SOURCES
from scanner.run.signals import stop_on_signals

if TYPE_CHECKING:
    from scanner.app import Gate
    from scanner.decide.model import Direction
    from scanner.gatekeeper import CheckResult


def decision_line(payload: Payload, result: CheckResult) -> str:
    """One line for a CheckResult: reason, colour, barcode, message, check latency, and
    the whole scan-to-decision time (frame grab or line arrival to journaled decision)."""
    d = result.decision
    return (f"{d.reason.value:<8} {d.feedback.value:<6} {payload.text}  {d.message} "
            f"{result.latency_ms:.2f} ms (scan to decision {latency_ms(payload):.1f} ms)")


def run_scan(gate: Gate, reader: ReaderConfig, direction: Direction,
             echo: Callable[..., None] = click.echo) -> Stats:
    """Read and decide until stopped; SIGTERM and SIGINT stop it cleanly. Every read is
    journaled: one that hygiene refused as MALFORMED_READ, before its line is shown."""
    keeper = gate.gatekeeper

    def on_reject(rejected: Rejected) -> None:
        keeper.check(rejected.text, direction, refused=rejected.why)
        echo(escape(rejected.line()))

    def check(payload: Payload) -> CheckResult:
        result = keeper.check(payload.text, direction)
        # No steward answers here: a held ticket stays refused and keeps no zone place.
        keeper.release(result.scan_id)
        return result

    pipeline = gate.pipeline(
        reader, check,
        on_result=lambda payload, result: echo(escape(decision_line(payload, result))),
        on_reject=on_reject,
        on_status=lambda line: echo(escape(line), err=True))
    # SIGTERM only: Ctrl-C stays a KeyboardInterrupt (caught below), which lands at once,
    # even in the middle of a check, where a handler would wait for the check to return.
    with stop_on_signals(signal.SIGTERM, on_stop=pipeline.stop):
        try:
            return pipeline.run()
        except KeyboardInterrupt:
            pipeline.stop()
            return pipeline.stats


def _reader(configured: ReaderConfig, options: dict[str, Any]) -> ReaderConfig:
    """The configured reader with the options given, checked by the configuration's own
    rules (``--baud -1`` would be retried for ever as a device that cannot open)."""
    from scanner.config.tables import build

    given = {key: value for key, value in options.items() if value is not None}
    raw = {key: list(value) if isinstance(value, tuple) else value
           for key, value in dataclasses.asdict(configured).items()}
    try:
        reader: ReaderConfig = build(ReaderConfig, raw | given, "reader.")
    except ConfigError as exc:
        flag = next((key for key in given if str(exc).startswith(f"reader.{key}:")), None)
        raise ConfigError(f"{exc} (set by --{flag})") if flag else exc from None
    return reader


@click.command()
@click.option("--source", type=click.Choice(sorted(SOURCES)), default=None,
              help="Where codes come from (default: reader.source).")
@click.option("--direction", type=click.Choice(["IN", "OUT"], case_sensitive=False),
              default="IN", show_default=True, help="Entering or leaving.")
@click.option("--camera", default=None, help="Camera index, /dev/videoN, URL or file.")
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--port", default=None, help="Serial port or pyserial URL (socket://, loop://).")
@click.option("--baud", type=int, default=None)
@click.option("--terminator", default=None, help="CR, LF, CRLF or literal bytes.")
@click.option("--prefix", default=None, help="Strip this prefix from serial lines.")
@click.option("--suffix", default=None, help="Strip this suffix from serial lines.")
@click.option("--device", default=None, help="evdev device of a keyboard-wedge scanner.")
@click.option("--layout", default=None, help="Keyboard layout of the wedge: us or de.")
@click.option("--decoder", default=None, help="Image decoder: auto, zxing or pyzbar.")
@click.pass_context
def scan(ctx: click.Context, /, direction: str, **options: Any) -> int:
    """Read codes from a camera or scanner and decide each one, until stopped.

    Every read is journaled, a refused one as MALFORMED_READ. Exit code 1 when any
    decision could not be made or journaled (the summary says how many).
    """
    from scanner.app import Gate
    from scanner.decide.model import Direction

    config = load(ctx)
    reader = _reader(config.reader, options)
    with Gate(dataclasses.replace(config, readers=(reader,))) as gate:
        stats = run_scan(gate, reader, Direction(direction.upper()))
    rejected = sum(stats.rejected.values())
    click.echo(f"{stats.decided} decided, {rejected} rejected, {stats.duplicates} duplicates, "
               f"{stats.sink_errors} failed", err=True)
    return 1 if stats.sink_errors else 0
