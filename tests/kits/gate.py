"""The real Gate, built the way ``gate run`` builds it: from a TOML file the configuration's
own writer wrote (scanner.config.toml), read back by the real loader (no tests here).

    gate_toml(tmp_path, **overrides)     that configuration as a gate.toml, for a command
    write_toml(path, doc)                any TOML document through the same writer
    gate_config(tmp_path, **overrides)   the GateConfig, through gate.toml and load_config
    build_gate(tmp_path, **overrides)    a Gate over it, with the edges a test fakes:
                                         ``transport`` (HTTP), ``clock``, ``sources``
                                         (readers), ``notifier``; pins are gpiozero's
                                         MockFactory unless ``outputs`` says otherwise
    make_gate                            the fixture: ``make_gate(tmp_path, **overrides)``
                                         builds one and closes it after the test

An override is a top-level value (``gate_id="B"``, ``events=(...)``), a table as a dict
merged over the kit's (``lookup={"deadline_ms": 400}``), or a whole table as its config
object (``api=api_config(server)``); an API token travels as GATE_API_TOKEN, never in the
file, as for a real gate.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kits.journal import EVENT, NOW
from scanner.app import Gate
from scanner.config import ApiConfig, GateConfig, Secret, load_config, toml

_written = itertools.count(1)

MakeGate = Callable[..., Gate]  # the fixture's type, for a test's signature


def gate_doc(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The configuration as TOML data: an offline gate (no lookup) on SQLite files in
    ``tmp_path``, mock pins, the page on any free port; then ``overrides``."""
    return merged({
        "gate_id": "g1", "db": str(tmp_path / "gate.db"), "events": [EVENT],
        "lookup": {"deadline_ms": 0}, "outputs": {"pin_factory": "mock"}, "web": {"port": 0},
    }, **overrides)


def merged(doc: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """``doc`` with ``overrides`` as the module says: a dict is merged into its table, a
    config object replaces it, anything else replaces the value."""
    out = dict(doc)
    for key, value in overrides.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[key] = _table(value)
        elif isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        elif isinstance(value, tuple | list) and all(map(dataclasses.is_dataclass, value)):
            out[key] = [_table(item) for item in value]  # readers
        else:
            out[key] = value
    return out


def _table(config: Any) -> dict[str, Any]:
    """A config object as its TOML table; the token goes by the environment."""
    table = dataclasses.asdict(config)
    table.pop("token", None)
    return table


def gate_config(tmp_path: Path, *, token: Secret | str | None = None,
                **overrides: Any) -> GateConfig:
    """``gate_doc`` written by the configuration's writer and loaded by its loader; the
    token (or the one an ``api`` override carries) is given as GATE_API_TOKEN."""
    api = overrides.get("api")
    if token is None and isinstance(api, ApiConfig):
        token = api.token
    secret = token.reveal() if isinstance(token, Secret) else token
    path = gate_toml(tmp_path, f"written-{next(_written)}.toml", **overrides)
    return load_config(path, env={"GATE_API_TOKEN": secret} if secret else {})


def gate_toml(tmp_path: Path, name: str = "gate.toml", **overrides: Any) -> Path:
    """``gate_doc`` written to ``tmp_path / name``: what ``--config`` or GATE_CONFIG names."""
    return write_toml(tmp_path / name, gate_doc(tmp_path, **overrides))


def write_toml(path: Path, doc: Mapping[str, Any]) -> Path:
    """``doc`` (a whole configuration or a few tables of one) as the writer writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml.dumps(doc), encoding="utf-8")
    return path


def build_gate(tmp_path: Path, *, clock: Any = lambda: NOW, transport: Any = None,
               sources: Any = None, notifier: Any = None, **overrides: Any) -> Gate:
    return Gate(gate_config(tmp_path, **overrides), clock=clock, transport=transport,
                sources=sources, notifier=notifier)


@pytest.fixture
def make_gate() -> Iterator[MakeGate]:
    """``make_gate(tmp_path, **overrides)``: ``build_gate``, each gate closed after the
    test (a test may close it first)."""
    built: list[Gate] = []

    def make(tmp_path: Path, **overrides: Any) -> Gate:
        gate = build_gate(tmp_path, **overrides)
        built.append(gate)
        return gate

    yield make
    for gate in reversed(built):
        gate.close()
