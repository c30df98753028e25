"""``gate config check``: validate the configuration and print what the gate will use.

The token is shown only as set or unset. Values not at their default say where they came
from (``# file``, ``# env GATE_DB``), so an operator sees which override won.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import orjson

from scanner.cli.main import config_source
from scanner.config import GateConfig, load_config_sources, toml
from scanner.errors import ConfigError, ConfigMistakes


@click.group()
def config() -> None:
    """Check and print the configuration."""


@config.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@click.option("--no-hardware", is_flag=True,
              help="Do not open the pin factory, pins and reader devices.")
@click.pass_context
def check(ctx: click.Context, as_json: bool, no_hardware: bool) -> int:
    """Validate the configuration and open its hardware as gate run would; print the
    effective values (exit 2 on a mistake, with every mistake listed, one line each)."""
    loaded, sources = load_config_sources(**config_source(ctx))
    read_files(loaded)
    if not no_hardware:
        open_hardware(loaded)
    doc = toml.document(loaded)
    if as_json:
        click.echo(orjson.dumps({"config": doc, "sources": sources},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_toml(doc, sources))
    click.echo("configuration OK", err=True)
    return 0


def read_files(config: GateConfig) -> None:
    """Read the files named in the configuration that ``gate run`` reads at start (the
    kiosk's PIN hashes, the mesh's key and credentials, the supervisor's public key) as it
    reads them: one that is missing, not private or not what it should be is said here, not
    first by a daemon that will not start. Every such mistake at once."""
    from scanner.kiosk.auth import SUPERVISOR_PIN_KEY, PinHash
    from scanner.mesh.broker_settings import MeshSettings
    from scanner.venue.signing import Verifier

    web, mesh = config.web, config.mesh
    reads: list[Callable[[], object]] = []
    if web.enabled and web.pin_file:
        reads.append(lambda: PinHash.load(web.pin_file or ""))
    if web.enabled and web.supervisor_pin_file:
        reads.append(lambda: PinHash.load(web.supervisor_pin_file or "", SUPERVISOR_PIN_KEY))
    if mesh.url:
        reads.append(lambda: MeshSettings.from_config(mesh))
    if mesh.supervisor_key:
        reads.append(lambda: Verifier.from_file(mesh.supervisor_key or ""))
    problems = []
    for read in reads:
        try:
            read()
        except ConfigError as exc:
            problems += [ConfigError(line) for line in exc.lines]
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigMistakes(problems)


def open_hardware(config: GateConfig) -> None:
    """Open the pin factory and pins, then each reader's device, and release them: what
    ``gate run`` would fail on at start is one ConfigError here (a reader's device that is
    missing would only be retried there, which this reports as well)."""
    from scanner.act.pins import open_outputs_or_fail
    from scanner.read.registry import probe_source

    open_outputs_or_fail(config.outputs).close()
    for i, reader in enumerate(config.readers):
        probe_source(reader, f"readers[{i}]" if len(config.readers) > 1 else "reader")


def render_toml(doc: dict[str, Any], sources: dict[str, str]) -> str:
    """The effective configuration as TOML that loads back to it, each value not at its
    default followed by where it came from."""
    notes = dict(sources)
    if len(doc["readers"]) == 1:  # the loader names a single reader's keys reader.x
        notes.update({f"readers[0].{key[len('reader.'):]}": origin
                      for key, origin in sources.items() if key.startswith("reader.")})
    if not doc["readers"]:
        notes["readers"] = "none yet: gate setup adds them"
    return toml.dumps(doc, notes).rstrip("\n")
