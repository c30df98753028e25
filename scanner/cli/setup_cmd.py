"""``gate setup``: a gate's first configuration, asked of a technician or given as flags.

Interactive: the API token (hidden, written to its own file, mode 0600, never echoed), the
events (listed from the server when it answers, else typed), the readers (chosen from what
``gate devices`` finds), the pins and the kiosk PIN. ``--non-interactive`` takes the same
from flags, for a fleet:

    gate setup --non-interactive --token-file /etc/gate-scanner/token --event EV1 \\
        --reader serial:/dev/serial/by-id/usb-...-if00 --relay-pin 17

The file is written only after it loads back through the real loader (a mistake is one
ConfigError line and leaves any previous configuration as it was), and an existing one is
replaced only with ``--force``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import click

from scanner.atomic import check_replaceable, remove
from scanner.cli.setup_answers import PIN_KEYS, Answers, write_private
from scanner.errors import ConfigError
from scanner.printable import is_number

DEFAULT_CONFIG = "/etc/gate-scanner/gate.toml"
# Reader keys a --reader spec may set after its device (source:device,key=value,...).
READER_OPTIONS = frozenset({"name", "direction", "lane", "baud", "terminator", "layout",
                            "width", "height", "fps", "dedup_window"})


def parse_reader(spec: str) -> dict[str, Any]:
    """``serial:/dev/ttyACM0,direction=OUT`` as a reader table; a BadParameter naming the
    part that is wrong."""
    from scanner.config import DEVICE_KEY, SOURCE_NAMES

    head, *options = spec.split(",")
    source, _, device = head.partition(":")
    if source not in SOURCE_NAMES:
        raise click.BadParameter(f"{spec!r}: the source is one of {', '.join(SOURCE_NAMES)}",
                                 param_hint="--reader")
    reader: dict[str, Any] = {"source": source}
    if source in DEVICE_KEY:
        if not device:
            raise click.BadParameter(f"{spec!r}: give the device, {source}:DEVICE",
                                     param_hint="--reader")
        reader[DEVICE_KEY[source]] = device
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in READER_OPTIONS:
            raise click.BadParameter(f"{spec!r}: {option!r} is not one of "
                                     f"{', '.join(sorted(READER_OPTIONS))}=VALUE",
                                     param_hint="--reader")
        reader[key] = _number(value) if key in ("baud", "width", "height", "fps",
                                                "dedup_window") else value
    return reader


def _number(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value  # the loader names the key and what it accepts


def _pin(value: str) -> int | str:
    return int(value) if is_number(value) else value


@click.command()
@click.option("--non-interactive", is_flag=True, help="Ask nothing: everything from flags.")
@click.option("--output", type=click.Path(dir_okay=False),
              help=f"The config file to write (default: --config, else {DEFAULT_CONFIG}).")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.option("--gate-id", help="This gate's name, journaled with every scan.")
@click.option("--api-url", help="The vivenu API (default https://vivenu.com).")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="The token's own file (mode 0600); asked for and written when interactive.")
@click.option("--event", "events", multiple=True, help="An event to scan (repeat; none: all).")
@click.option("--reader", "readers", multiple=True, metavar="SOURCE:DEVICE[,KEY=VALUE]",
              help="A reader, e.g. serial:/dev/ttyACM0 or picamera2:0,direction=OUT (repeat).")
@click.option("--db", help="The ticket store's SQLite file.")
@click.option("--pin-factory", type=click.Choice(["lgpio", "rpigpio", "pigpio", "native",
                                                  "mock"]), help="gpiozero's pin factory.")
@click.option("--relay-pin", help="The turnstile relay's pin (BCM number or GPIO17).")
@click.option("--green-pin")
@click.option("--red-pin")
@click.option("--buzzer-pin")
@click.option("--passage-pin", help="The turnstile's PASS contact.")
@click.option("--fire-alarm-pin", help="The normally closed fire-alarm loop.")
@click.option("--kiosk-pin-file", type=click.Path(dir_okay=False),
              help="The kiosk PIN's hash file (gate kiosk set-pin writes one).")
@click.option("--web-port", type=click.IntRange(0, 65535), help="The kiosk page's port.")
@click.pass_context
def setup(ctx: click.Context, /, non_interactive: bool, output: str | None, force: bool,
          **flags: Any) -> int:
    """Write this gate's configuration: token, events, readers, pins, kiosk PIN."""
    target = Path(output or ctx.find_root().obj.get("config_path") or DEFAULT_CONFIG)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; --force replaces it")
    answers = from_flags(flags)
    if not non_interactive:
        from scanner.cli.setup_ask import ask

        ask(answers, target.parent)
    elif not answers.table("api").get("token_file") and not os.environ.get("GATE_API_TOKEN"):
        raise click.UsageError("--non-interactive needs --token-file (or GATE_API_TOKEN)")
    config = write_config(target, answers)
    readers = ", ".join(f"{r.source} {getattr(r, 'port', '')}".strip()
                        for r in config.readers) or "none"
    click.echo(f"wrote {target}: gate {config.gate_id}, events "
               f"{', '.join(config.events) or 'all'}, readers: {readers}")
    click.echo("next: gate config check, gate test outputs, then start gate run")
    return 0


def from_flags(flags: dict[str, Any]) -> Answers:
    answers = Answers()
    for key in ("gate_id", "db"):
        if flags[key]:
            answers.top[key] = flags[key]
    if flags["events"]:
        answers.top["events"] = list(flags["events"])
    api = answers.table("api")
    if flags["api_url"]:
        api["url"] = flags["api_url"]
    if flags["token_file"]:
        api["token_file"] = str(Path(flags["token_file"]).absolute())
    answers.readers = [parse_reader(spec) for spec in flags["readers"]]
    if flags["pin_factory"]:
        answers.table("outputs")["pin_factory"] = flags["pin_factory"]
    for key in PIN_KEYS:
        if flags[key]:
            answers.table("outputs")[key] = _pin(flags[key])
    if flags["kiosk_pin_file"]:
        answers.table("web")["pin_file"] = str(Path(flags["kiosk_pin_file"]).absolute())
    if flags["web_port"] is not None:
        answers.table("web")["port"] = flags["web_port"]
    return answers


def write_config(target: Path, answers: Answers) -> Any:
    """Write ``answers`` to ``target`` once they load back through the real loader; the
    loaded configuration. A ConfigError leaves ``target`` as it was."""
    from scanner.config import load_config

    draft = target.with_name(f".{target.name}.setup")
    try:
        check_replaceable(target)
        write_private(draft, answers.toml())
        # The file alone must make the gate: no GATE_* variable of this shell counts.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
        config = load_config(draft, env=env)
        _keep_access(draft, target)
        draft.replace(target)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        remove(draft)  # a disk that refused the draft may refuse its removal too
    return config


def _keep_access(draft: Path, target: Path) -> None:
    """The new file gets the old one's mode and group (install.sh makes it root:gate 0640,
    so the daemon's user reads it); a first one is 0640."""
    try:
        old = target.stat()
    except FileNotFoundError:
        draft.chmod(0o640)
        return
    draft.chmod(old.st_mode & 0o777)
    # Not root: the file stays in this user's group, as any file they write.
    with contextlib.suppress(PermissionError):
        os.chown(draft, -1, old.st_gid)
