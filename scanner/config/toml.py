"""The one TOML writer: a configuration document as text that ``load_config`` reads back.

``document(config)`` is a ``GateConfig`` as plain data (the token only "set" or "unset");
``dumps(doc)`` writes any such document: ``gate config check``, ``gate setup``, the demo,
the benchmarks and the tests all write their configuration through it, so what one writes
the loader has been shown to read (tests/test_config_toml.py).

Keys come in TOML's order: a table's values, then its tables, then its arrays of tables.
``None`` has no TOML spelling and is written as a comment, as are the keys the file may
not hold (``api.token``: ``load.NOT_IN_FILE``), so a printed configuration never smuggles
a secret into a file that is shared.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from scanner.config.load import NOT_IN_FILE
from scanner.config.model import GateConfig
from scanner.config.zones import venue


def document(config: GateConfig) -> dict[str, Any]:
    """``config`` as plain data; the token is "set" or "unset", never its value."""
    # The zone tree is a mapping of zones, not plain data: its [[zones]] tables instead.
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


def dumps(doc: Mapping[str, Any], notes: Mapping[str, str] | None = None) -> str:
    """``doc`` as TOML; ``notes`` maps a dotted key (``readers[1].source`` for an array's
    table) to a comment written after its line, say where the value came from."""
    return "\n".join(_table(doc, "", "", notes or {})) + "\n"


def _table(values: Mapping[str, Any], path: str, prefix: str,
           notes: Mapping[str, str]) -> list[str]:
    """``path``: the table's header (``mesh.``); ``prefix``: its keys' dotted name for
    ``notes`` and ``NOT_IN_FILE`` (``readers[0].``)."""
    lines = []
    tables = {k: v for k, v in values.items() if isinstance(v, Mapping)}
    arrays = {k: v for k, v in values.items() if _is_array_of_tables(v)}
    for key, value in values.items():
        if key in tables or key in arrays:
            continue
        note = notes.get(prefix + key)
        end = f"  # {note}" if note else ""
        if prefix + key in NOT_IN_FILE:
            lines.append(f"# {key}: {value}{end}")  # never loadable from the file, by design
        elif value is None:
            lines.append(f"# {key} = (unset){end}")
        else:
            lines.append(f"{key} = {value_text(value)}{end}")
    for key, table in tables.items():
        lines += ["", f"[{path}{key}]",
                  *_table(table, f"{path}{key}.", f"{prefix}{key}.", notes)]
    for key, array in arrays.items():
        for i, table in enumerate(array):
            lines += ["", f"[[{path}{key}]]",
                      *_table(table, f"{path}{key}.", f"{prefix}{key}[{i}].", notes)]
    return lines


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) \
        and all(isinstance(item, Mapping) for item in value)


def value_text(value: Any) -> str:
    """One TOML value: a boolean, number, string or array of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are a subset of TOML basic strings'
    raise TypeError(f"no TOML value for {type(value).__name__}")
