"""The questions of an interactive ``gate setup``; what flags already answered is not asked.

The token is read hidden and goes straight to its own file (mode 0600); it is never echoed,
logged or put in the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hardware.devices import Devices, discover
from scanner.cli.setup_answers import PIN_KEYS, Answers, write_private
from scanner.errors import ConfigError
from scanner.printable import escape, is_number
from scanner.secret_file import SecretFileMissing, read_secret_text

DEFAULT_API_URL = "https://vivenu.com"


def ask(answers: Answers, folder: Path) -> None:
    """Fill ``answers`` from the technician; ``folder`` holds the token and PIN files."""
    api = answers.table("api")
    api.setdefault("url", click.prompt("vivenu API URL", default=DEFAULT_API_URL))
    token = ""
    if "token_file" not in api:
        api["token_file"] = str(folder / "token")
        token = click.prompt("API token (hidden)", hide_input=True).strip()
        try:
            write_private(Path(api["token_file"]), token + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write {api['token_file']}: {exc.strerror or exc}") \
                from None
        click.echo(f"token written to {api['token_file']} (mode 0600)")
    if "events" not in answers.top:
        answers.top["events"] = _events(api["url"], token or _read(api["token_file"]))
    if not answers.readers:
        answers.readers = _readers(discover())
    _pins(answers.table("outputs"))
    web = answers.table("web")
    if "pin_file" not in web:
        _kiosk_pin(web, folder)


def _read(path: str) -> str:
    """The token in a file given by flag; one the gate would refuse is refused here."""
    try:
        return read_secret_text(path, "api.token_file")
    except SecretFileMissing:
        return ""


def _events(url: str, token: str) -> list[str]:
    """Chosen from the server's listing when it answers, else typed."""
    listed = _list_events(url, token)
    if not listed:
        typed = click.prompt("event ids, comma-separated (empty: every event the token may "
                             "scan)", default="", show_default=False)
        return [e.strip() for e in typed.split(",") if e.strip()]
    for i, (event_id, name) in enumerate(listed, 1):
        click.echo(escape(f"  {i}. {name} ({event_id})"))
    picked = _numbers(click.prompt("events to scan, by number (empty: all)", default="",
                                   show_default=False), len(listed))
    return [listed[i][0] for i in picked]


def _list_events(url: str, token: str) -> list[tuple[str, str]]:
    from scanner.config import Secret
    from scanner.errors import GateError
    from scanner.vivenu.client import VivenuClient

    try:
        with VivenuClient(url, Secret(token), retries=0) as client:
            return [(str(doc["_id"]), str(doc.get("name", ""))) for doc in client.events()]
    except (GateError, ValueError, KeyError, TypeError) as exc:
        click.echo(escape(f"cannot list the events ({exc}); type them instead"), err=True)
        return []


def _numbers(text: str, count: int) -> list[int]:
    """``1, 3`` as indexes 0 and 2; numbers out of range are refused again."""
    picked = []
    for part in text.replace(",", " ").split():
        if not is_number(part) or not 1 <= int(part) <= count:
            raise click.BadParameter(f"{part!r}: choose numbers from 1 to {count}")
        picked.append(int(part) - 1)
    return picked


def candidates(found: Devices) -> list[tuple[str, dict[str, Any]]]:
    """What could read codes, each as (a line for a person, its reader table); a libcamera
    camera is read through picamera2, its raw V4L2 node is not offered."""
    offered: list[tuple[str, dict[str, Any]]] = []
    for port in found.serial:
        offered.append((f"serial scanner {port.stable} {port.description}".rstrip(),
                        {"source": "serial", "port": port.stable}))
    for cam in found.cameras:
        if cam.usable:
            offered.append((f"camera {cam.device}: {cam.name} ({cam.source})",
                            {"source": cam.source, "camera": cam.device}))
    for dev in found.inputs:
        if dev.keyboard:
            kind = "keyboard-wedge scanner" if dev.scanner else "keyboard (scanner?)"
            offered.append((f"{kind} {dev.stable}: {dev.name}",
                            {"source": "hid", "device": dev.stable}))
    return offered


def _readers(found: Devices) -> list[dict[str, Any]]:
    offered = candidates(found)
    if not offered:
        click.echo("no scanner or camera found (gate devices lists what is attached); "
                   "the gate starts without readers")
        return []
    for i, (line, _table) in enumerate(offered, 1):
        click.echo(escape(f"  {i}. {line}"))
    readers = []
    for index in _numbers(click.prompt("readers to use, by number", default="1"),
                          len(offered)):
        reader = dict(offered[index][1])
        reader["direction"] = click.prompt(f"  {offered[index][0]}: direction",
                                           type=click.Choice(["IN", "OUT"]), default="IN")
        reader["lane"] = click.prompt("  lane (the turnstile it serves)", default="main")
        readers.append(reader)
    return readers


def _pins(outputs: dict[str, Any]) -> None:
    outputs.setdefault("pin_factory", click.prompt(
        "gpiozero pin factory", type=click.Choice(["lgpio", "rpigpio", "pigpio", "native",
                                                   "mock"]), default="lgpio"))
    for key in PIN_KEYS:
        if key not in outputs:
            value = click.prompt(f"{key.replace('_', ' ')} (BCM number; empty: not wired)",
                                 default="", show_default=False).strip()
            if value:
                outputs[key] = int(value) if is_number(value) else value


def _kiosk_pin(web: dict[str, Any], folder: Path) -> None:
    from scanner.kiosk.auth import write_pin_file

    pin = click.prompt("kiosk PIN for stewards (hidden; empty: none)", default="",
                       hide_input=True, show_default=False, confirmation_prompt=True)
    if not pin:
        return
    path = folder / "kiosk.pin"
    try:
        write_pin_file(path, pin)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="kiosk PIN") from None
    web["pin_file"] = str(path)
    click.echo(f"kiosk PIN hashed into {path}")
