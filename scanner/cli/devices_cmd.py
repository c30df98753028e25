"""``gate devices``: the serial ports, cameras, input devices and GPIO chips attached, with
the names a reader's configuration takes (``gate setup`` offers the same list).

Device names come from the devices themselves: shown escaped, like every read.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from hardware.devices import CSI_DRIVERS, Devices, discover
from scanner.printable import escape


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--dev", "dev_root", type=click.Path(file_okay=False), default="/dev",
              hidden=True, help="The /dev directory to list (tests).")
def devices(as_json: bool, dev_root: str) -> int:
    """List serial ports, cameras, input devices and GPIO chips attached to this machine."""
    found = discover(Path(dev_root))
    if as_json:
        click.echo(orjson.dumps(found.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo("\n".join(describe(found)))
    return 0


def describe(found: Devices) -> list[str]:
    """The listing as lines for a person: each usable device with the config it takes."""
    lines = ["serial ports (source = \"serial\", port = ...):"]
    lines += [f"  {port.stable}" + (f"  -> {port.device}" if port.by_id else "")
              + (f"  {port.description}" if port.description else "")
              for port in found.serial] or ["  none"]
    lines.append("cameras:")
    for cam in found.cameras:
        if cam.kind == "libcamera":
            lines.append(f"  libcamera {cam.device}: {cam.name}  "
                         f"(source = \"picamera2\", camera = \"{cam.device}\")")
        elif cam.error:
            lines.append(f"  {cam.device}: cannot open ({cam.error})")
        elif cam.driver in CSI_DRIVERS:
            lines.append(f"  {cam.device}: {cam.name} ({cam.driver}): a Pi camera's raw node; "
                         "read it with source = \"picamera2\"")
        elif cam.usable:
            lines.append(f"  {cam.device}: {cam.name} ({cam.driver})  "
                         f"(source = \"camera\", camera = \"{cam.device}\")")
        else:
            lines.append(f"  {cam.device}: {cam.name} ({cam.driver}): not a camera")
    if not found.cameras:
        lines.append("  none")
    lines.append("input devices (source = \"hid\", device = ...):")
    for inp in found.inputs:
        if inp.error:
            lines.append(f"  {inp.stable}: cannot open ({inp.error}; "
                         "is the user in the input group?)")
            continue
        kind = ("keyboard-wedge scanner" if inp.scanner
                else "keyboard (a scanner in keyboard mode?)" if inp.keyboard else "other")
        lines.append(f"  {inp.stable}: {inp.name}  [{kind}]")
    if not found.inputs:
        lines.append("  none")
    lines.append("GPIO chips (outputs.pin_factory = \"lgpio\"):")
    lines += [f"  {chip.path}: " + (f"cannot open ({chip.error})" if chip.error
                                    else f"{chip.label or chip.name} ({chip.lines} lines)")
              for chip in found.gpio_chips] or ["  none"]
    lines += [f"note: {note}" for note in found.notes]
    return [escape(line) for line in lines]
