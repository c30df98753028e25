"""Loading: the TOML file plus the environment, checked whole, into one ``GateConfig``.

Precedence: defaults < TOML file (``GATE_CONFIG``) < environment. The environment names are
fixed (``ENVIRONMENT`` below). The token is never read from the TOML file itself, only from
its own file (mode 0600) or the environment, so it can never leak through a shared config
file; the mesh credentials likewise come from their own file.

Every mistake is found in one reading and reported one line each, naming the key and what
it accepts: ``upload.batch_size: expected an integer from 1 to 1000, got 0``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scanner.config.model import ApiConfig, GateConfig, ReaderConfig, RouteConfig, Secret
from scanner.config.names import DEVICE_KEY
from scanner.config.tables import build
from scanner.config.zones import ZoneTree, parse_zones
from scanner.errors import ConfigError, ConfigMistakes
from scanner.secret_file import read_secret_text

# Environment variable -> dotted key it overrides.
ENVIRONMENT = {
    "GATE_API_URL": "api.url",
    "GATE_API_TOKEN_FILE": "api.token_file",
    "GATE_EVENTS": "events",
    "GATE_DB": "db",
    "GATE_JOURNAL_DB": "journal_db",
    "GATE_ID": "gate_id",
    "GATE_MESH_URL": "mesh.url",
}
_NOT_SHOWN = "(value not shown: it may be a token)"
# A gate's configuration is a few KiB; a file far beyond that is the wrong file.
MAX_CONFIG_BYTES = 1024 * 1024

# Keys the TOML file may not set, with the reason given to the operator.
NOT_IN_FILE = {
    "api.token": "put the token in its own file (api.token_file, mode 0600) "
                 "or GATE_API_TOKEN, never in the config file",
    "mesh.username": "put it in mesh.credentials_file (mode 0600), never in the config file",
    "mesh.password": "put it in mesh.credentials_file (mode 0600), never in the config file",
}


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None, *,
                origin: str = "GATE_CONFIG") -> GateConfig:
    """Load and check the configuration; raises ConfigError naming the key on any mistake."""
    return load_config_sources(path, env, origin=origin)[0]


def load_config_sources(path: str | os.PathLike[str] | None = None,
                        env: Mapping[str, str] | None = None, *,
                        origin: str = "GATE_CONFIG") -> tuple[GateConfig, dict[str, str]]:
    """The configuration and, per dotted key not at its default, where it came from
    (``file`` or ``env GATE_DB``). ``origin`` names where ``path`` came from (``--config``
    or ``GATE_CONFIG``), for a file that cannot be read.

    Every mistake is found in one reading: one is raised as a ConfigError, several as
    ConfigMistakes, one line each."""
    env = os.environ if env is None else env
    if not path and env.get("GATE_CONFIG"):
        path, origin = env["GATE_CONFIG"], "GATE_CONFIG"
    data: dict[str, Any] = {}
    if path:
        try:
            with Path(path).open("rb") as file:
                raw = file.read(MAX_CONFIG_BYTES + 1)  # /dev/zero must not fill the memory
            if len(raw) > MAX_CONFIG_BYTES:
                raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES // 1024} KiB: not a "
                                  f"gate's configuration")
            # utf-8-sig: a byte order mark, as some Windows editors write, is dropped.
            data = tomllib.loads(raw.decode("utf-8-sig"))
        except FileNotFoundError:
            raise ConfigError(f"{origin}: no such file: {path}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                              f"at offset {exc.start}); save it as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except RecursionError:  # tomllib reads nested arrays and tables by recursion
            raise ConfigError(f"{path}: not valid TOML for a gate: arrays or tables nested "
                              f"too deep") from None
    problems: list[ConfigError] = []
    for key, why in NOT_IN_FILE.items():
        section, _, name = key.partition(".")
        table = data.get(section)
        if isinstance(table, dict) and name in table:
            problems.append(ConfigError(f"{key}: not allowed in the config file: {why}"))
            del table[name]
    try:
        reader_tables, reader_key = _reader_tables(data)
    except ConfigError as exc:
        problems.append(exc)
        data.pop("reader", None)
        data.pop("readers", None)
        reader_tables, reader_key = [], lambda _i: "reader"
    route_tables = data.pop("routes", [])
    if not isinstance(route_tables, list):
        problems.append(ConfigError("routes: expected [[routes]] tables"))
        route_tables = []
    zone_tables = data.pop("zones", None)
    sources = {key: "file" for key in _keys(data)}
    sources.update({f"{reader_key(i)}.{k}": "file"  # a table that is not: build() names it
                    for i, table in enumerate(reader_tables or ()) if isinstance(table, dict)
                    for k in table})
    overridden = _apply_env(data, env)
    sources.update({key: f"env {var}" for var, key in overridden.items()})
    config = build(GateConfig, data, "", problems)
    readers = config.readers if reader_tables is None else tuple(
        build(ReaderConfig, table, f"{reader_key(i)}.", problems)
        for i, table in enumerate(reader_tables))
    problems += _check_readers(readers, reader_key)
    routes = tuple(build(RouteConfig, table, f"routes[{i}].", problems)
                   for i, table in enumerate(route_tables))
    zones = _zones(zone_tables, config, problems)
    token = Secret("")
    try:
        token = _read_token(config.api, env, overridden)
    except ConfigError as exc:
        problems.append(exc)
    if problems:
        blamed = [_blame_env(problem, overridden) for problem in problems]
        raise blamed[0] if len(blamed) == 1 else ConfigMistakes(blamed)
    if env.get("GATE_API_TOKEN"):
        sources["api.token"] = "env GATE_API_TOKEN"
    elif token:
        sources["api.token"] = "api.token_file"
    api = dataclasses.replace(config.api, token=token)
    return dataclasses.replace(config, api=api, readers=readers, routes=routes,
                               zones=zones), sources


def _zones(tables: Any, config: GateConfig, problems: list[ConfigError]) -> ZoneTree:
    """The ``[[zones]]`` tree, its mistakes and those of the keys that name a zone."""
    try:
        tree = parse_zones(tables)
    except ConfigMistakes as exc:
        problems += exc.mistakes
        return config.zones
    except ConfigError as exc:
        problems.append(exc)
        return config.zones
    if config.zone and tables and config.zone not in tree:
        problems.append(ConfigError(f"zone: {config.zone!r} is not one of the [[zones]] "
                                    f"({', '.join(tree.zones)})"))
    if config.mesh.url and tree.capped() and not config.mesh.minter:
        problems.append(ConfigError("mesh.minter: required with mesh.url and a zone capacity: "
                                    "the one gate that makes the places, the same in every "
                                    "gate's configuration"))
    return tree


def _keys(data: dict[str, Any]) -> list[str]:
    """Dotted keys of the file's scalars and one-level tables (readers are listed apart)."""
    keys = []
    for key, value in data.items():
        if isinstance(value, dict):
            keys += [f"{key}.{inner}" for inner in value]
        else:
            keys.append(key)
    return keys


def _reader_tables(data: dict[str, Any]) -> tuple[list[Any] | None, Any]:
    """Pops ``[reader]`` or ``[[readers]]``; returns the tables (None: neither was given,
    ``[]``: ``readers = []``, no reader yet) and how to name their keys."""
    if "reader" in data and "readers" in data:
        raise ConfigError("readers: give either one [reader] table or [[readers]] tables, "
                          "not both")
    if "reader" in data:
        return [data.pop("reader")], lambda _i: "reader"
    tables = data.pop("readers", None)
    if tables is None:
        return None, lambda _i: "reader"
    if not isinstance(tables, list):
        raise ConfigError("readers: expected [[readers]] tables, or readers = [] for none")
    return tables, lambda i: f"readers[{i}]"


def _check_readers(readers: tuple[ReaderConfig, ...], key: Any) -> list[ConfigError]:
    """Mistakes across readers: a name or a device given twice, two readers on stdin."""
    problems = []
    names: dict[str, int] = {}
    for i, reader in enumerate(readers):
        if reader.name and reader.name in names:
            problems.append(ConfigError(f"{key(i)}.name: {reader.name!r} is already "
                                        f"{key(names[reader.name])}"))
            continue
        names[reader.name] = i
    # Two readers on one port would each get a share of its codes, in their own directions.
    devices: dict[tuple[str, str], int] = {}
    for i, reader in enumerate(readers):
        attr = DEVICE_KEY.get(reader.source)
        if attr is None:
            continue
        device = (reader.source, getattr(reader, attr))
        if device in devices:
            problems.append(ConfigError(f"{key(i)}.{attr}: {device[1]!r} is already "
                                        f"{key(devices[device])}"))
            continue
        devices[device] = i
    stdin = [i for i, r in enumerate(readers) if r.source == "stdin"]
    if len(stdin) > 1:
        problems.append(ConfigError(f"{key(stdin[1])}.source: only one reader can read stdin"))
    return problems


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Writes the environment's overrides into ``data``; returns variable -> dotted key."""
    applied = {}
    for var, key in ENVIRONMENT.items():
        if var not in env:
            continue
        value: Any = env[var]
        if var == "GATE_EVENTS":
            value = [e.strip() for e in value.split(",") if e.strip()]
        section, _, name = key.rpartition(".")
        table = data.setdefault(section, {}) if section else data
        if isinstance(table, dict):  # else build() names the section as not a table
            table[name] = value
            applied[var] = key
    return applied


def _blame_env(exc: ConfigError, overridden: dict[str, str]) -> ConfigError:
    """Adds which variable set the offending key, since the file does not show it."""
    message = str(exc)
    for var, key in overridden.items():
        if message.startswith(f"{key}:"):
            return ConfigError(f"{message} (set by {var})")
    return exc


def _token_problem(key: str, token: str) -> ConfigError | None:
    """A token goes into an HTTP header (``Secret.fits_header``)."""
    if Secret(token).fits_header():
        return None
    return ConfigError(f"{key}: the token must be visible ASCII characters, without spaces "
                       f"or control characters {_NOT_SHOWN}")


def _read_token(api: ApiConfig, env: Mapping[str, str], overridden: dict[str, str]) -> Secret:
    if env.get("GATE_API_TOKEN"):
        token = env["GATE_API_TOKEN"].strip()
        if problem := _token_problem("GATE_API_TOKEN", token):
            raise problem
        return Secret(token)
    if not api.token_file:
        return Secret("")
    key = "GATE_API_TOKEN_FILE" if "GATE_API_TOKEN_FILE" in overridden else "api.token_file"
    token_path = Path(api.token_file).expanduser()
    text = read_secret_text(token_path, key, credentials_dir=env.get("CREDENTIALS_DIRECTORY"))
    if not text:
        raise ConfigError(f"{key}: {token_path} is empty")
    if problem := _token_problem(key, text):
        raise problem
    return Secret(text)
