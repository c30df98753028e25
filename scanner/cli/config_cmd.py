"""``gate config check``: validate the configuration and print what the gate will use.

The token is shown only as set or unset. Values not at their default say where they came
from (``# file``, ``# env GATE_DB``), so an operator sees which override won.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
import orjson

from scanner.cli.main import config_source
from scanner.config import GateConfig, load_config_sources
from scanner.config.zones import venue


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
    if not no_hardware:
        open_hardware(loaded)
    doc = effective(loaded)
    if as_json:
        click.echo(orjson.dumps({"config": doc, "sources": sources},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_toml(doc, sources))
    click.echo("configuration OK", err=True)
    return 0


def open_hardware(config: GateConfig) -> None:
    """Open the pin factory and pins, then each reader's device, and release them: what
    ``gate run`` would fail on at start is one ConfigError here (a reader's device that is
    missing would only be retried there, which this reports as well)."""
    from scanner.act.settings import open_outputs_or_fail
    from scanner.read.sources import probe_source

    open_outputs_or_fail(config.outputs).close()
    for i, reader in enumerate(config.readers):
        probe_source(reader, f"readers[{i}]" if len(config.readers) > 1 else "reader")


def effective(config: GateConfig) -> dict[str, Any]:
    """The configuration as plain data; the token is "set" or "unset", never its value."""
    doc = dataclasses.asdict(dataclasses.replace(config, zones=venue()))
    doc["zones"] = config.zones.to_tables()
    doc["api"]["token"] = "set" if config.api.token else "unset"
    return {key: _plain(value) for key, value in doc.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def render_toml(doc: dict[str, Any], sources: dict[str, str]) -> str:
    """TOML that loads back to the same configuration; ``None`` values become comments."""
    top = {k: v for k, v in doc.items() if not isinstance(v, dict | list) or k == "events"}
    lines = _table(top, "", sources)
    if not doc["readers"]:
        lines.append("readers = []  # none yet: gate setup adds them")
    for name, value in doc.items():
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_table(value, f"{name}.", sources)]
    for i, reader in enumerate(doc["readers"]):
        # Sources name a single [reader] table's keys reader.x, a list's readers[i].x.
        prefix = f"readers[{i}]." if len(doc["readers"]) > 1 else "reader."
        lines += ["", "[[readers]]", *_table(reader, prefix, sources)]
    for i, zone in enumerate(doc["zones"]):
        lines += ["", "[[zones]]", *_table(zone, f"zones[{i}].", sources)]
    return "\n".join(lines)


def _table(values: dict[str, Any], prefix: str, sources: dict[str, str]) -> list[str]:
    lines = []
    for key, value in values.items():
        origin = sources.get(prefix + key)
        note = f"  # {origin}" if origin else ""
        if key == "token" and prefix == "api.":
            lines.append(f"# token: {value}{note}")  # never loadable from TOML, by design
        elif value is None:
            lines.append(f"# {key} = (unset){note}")
        else:
            lines.append(f"{key} = {toml_value(value)}{note}")
    return lines


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    # JSON's escapes are a subset of TOML basic strings'.
    return json.dumps(value)
