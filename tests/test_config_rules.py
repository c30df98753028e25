"""Every constrained key refuses a value outside what it declares, in one line naming the key.

The fields are found by walking the model, so a key added later with a rule is tested here
without a new test, and a numeric key added without a rule fails ``test_every_number_...``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cli import gate

from scanner.cli.main import main
from scanner.config import GateConfig, ReaderConfig, load_config
from scanner.config.rules import Rule, rule_of
from scanner.config.tables import build
from scanner.errors import ConfigError


def constrained_fields() -> list[tuple[str, type, dataclasses.Field[Any]]]:
    """(dotted key, owning class, field) for every field with a rule; readers as [reader]."""
    found = []
    tables = [("", GateConfig), ("reader.", ReaderConfig)]
    for prefix, cls in tables:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                tables.append((f"{f.name}.", hints[f.name]))
            elif "rule" in f.metadata:
                found.append((prefix + f.name, cls, f))
    return found


FIELDS = constrained_fields()
# What a field with a custom check certainly refuses.
CHECK_REFUSES = {"api.url": "ftp://vivenu.com", "mesh.url": "https://broker",
                 "reader.terminator": "", "outputs.relay_pin": -1, "journal.backup_at": "25:00",
                 "gate_id": "north/1", "mesh.minter": "north/1", "db": "/", "journal_db": "/"}
# A file's home folder that cannot be found: ``expanduser`` raises RuntimeError.
NO_HOME = "~no-such-user-here/file"


def bad_values(key: str, kind: Any, rule: Rule) -> list[Any]:
    """Values just outside what ``rule`` accepts."""
    if rule.check is not None:
        pin = key.endswith("_pin")
        return [-1, "GPIO", "pin 7"] if pin else [CHECK_REFUSES[key]]
    is_tuple = typing.get_origin(kind) is tuple
    values: list[Any] = []
    if rule.choices:
        values.append(["no-such-choice"] if is_tuple else "no-such-choice")
    if rule.nonempty:
        values.append([] if is_tuple else " ")
    if rule.path:
        values.append(NO_HOME)
    step = 1 if _number(kind) is int else 0.5
    if rule.lo is not None:
        values.append(rule.lo - step)
    if rule.hi is not None:
        values.append(rule.hi + step)
    if rule.above is not None:
        values.append(rule.above)  # the exclusive bound itself
    return [_as_kind(v, kind) for v in values]


def good_values(kind: Any, rule: Rule) -> list[Any]:
    """The bounds a rule includes: a refusal there would be as wrong as accepting outside."""
    bounds = [b for b in (rule.lo, rule.hi) if b is not None]
    return [_as_kind(b, kind) for b in bounds]


def _number(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    return args[0]


def _as_kind(value: Any, kind: Any) -> Any:
    return int(value) if _number(kind) is int and isinstance(value, float) and \
        value.is_integer() else value


def toml_for(key: str, value: Any) -> str:
    section, _, name = key.rpartition(".")
    line = f"{name} = {json.dumps(value)}"
    return f"[{section}]\n{line}\n" if section else f"{line}\n"


CASES = [(key, value) for key, cls, f in FIELDS
         for value in bad_values(key, typing.get_type_hints(cls)[f.name], rule_of(f))]


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_out_of_range_value_is_refused_naming_the_key(tmp_path: Path, key: str,
                                                      value: Any) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(toml_for(key, value), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert "\n" not in message


GOOD = [(key, value) for key, cls, f in FIELDS
        for value in good_values(typing.get_type_hints(cls)[f.name], rule_of(f))]


@pytest.mark.parametrize(("key", "value"), GOOD, ids=[f"{k}={v!r}" for k, v in GOOD])
def test_inclusive_bound_is_accepted(tmp_path: Path, key: str, value: Any) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(toml_for(key, value), encoding="utf-8")
    config = load_config(path, env={})
    section, _, name = key.rpartition(".")
    owner = config.reader if section == "reader" else getattr(config, section, config)
    assert getattr(owner, name) == value


def test_every_number_in_the_model_declares_a_bound() -> None:
    """An interval, timeout, size or port without a rule would accept 0 or -1 silently."""
    keys = {key for key, _cls, _f in FIELDS}
    tables = [("", GateConfig), ("reader.", ReaderConfig)]
    unbounded = []
    for prefix, cls in tables:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                tables.append((f"{f.name}.", hints[f.name]))
            elif _number(hints[f.name]) in (int, float) and prefix + f.name not in keys:
                unbounded.append(prefix + f.name)
    assert unbounded == []


RANGED = [(key, cls, f) for key, cls, f in FIELDS
          if _number(typing.get_type_hints(cls)[f.name]) in (int, float)
          and rule_of(f).check is None]


@given(field=st.sampled_from(RANGED), number=st.integers(-10**6, 10**6))
def test_a_ranged_field_accepts_exactly_its_range(field: Any, number: int) -> None:
    key, cls, f = field
    rule = rule_of(f)
    inside = ((rule.lo is None or number >= rule.lo) and (rule.hi is None or number <= rule.hi)
              and (rule.above is None or number > rule.above))
    prefix = key.rpartition(".")[0]
    try:
        built = build(cls, {f.name: number}, f"{prefix}." if prefix else "")
    except ConfigError as exc:
        assert not inside, exc
        assert str(exc).startswith(f"{key}: expected ")
    else:
        assert inside
        assert getattr(built, f.name) == number


# Enumerated keys given a wrong value, through the real CLI: one line naming the key, exit 2.
ENUMERATED = [
    ("reader.source", '[reader]\nsource = "webcam"\n'),
    ("reader.decoder", '[reader]\ndecoder = "tesseract"\n'),
    ("reader.formats", '[reader]\nformats = ["QRCode", "EAN13"]\n'),
    ("reader.layout", '[reader]\nlayout = "dvorak"\n'),
    ("reader.terminator", '[reader]\nterminator = ""\n'),
    ("reader.direction", '[reader]\ndirection = "SIDEWAYS"\n'),
    ("policy.checkout_without_checkin", '[policy]\ncheckout_without_checkin = "maybe"\n'),
    ("upload.batch_size", "[upload]\nbatch_size = 0\n"),
    ("upload.batch_size", "[upload]\nbatch_size = 1001\n"),
    ("sync.page_size", "[sync]\npage_size = 1001\n"),
    ("sync.interval", "[sync]\ninterval = 0\n"),
    ("upload.interval", "[upload]\ninterval = -5\n"),
    ("api.read_timeout", "[api]\nread_timeout = 0\n"),
    ("lookup.deadline_ms", "[lookup]\ndeadline_ms = -1\n"),
    ("reader.max_length", "[reader]\nmax_length = 0\n"),
    ("reader.dedup_window", "[reader]\ndedup_window = -0.5\n"),
    ("reader.fps", "[reader]\nfps = 0\n"),
    ("web.port", "[web]\nport = 65536\n"),
    ("outputs.pin_factory", '[outputs]\npin_factory = "wiringpi"\n'),
    ("outputs.relay_pulse_ms", "[outputs]\nrelay_pulse_ms = 99\n"),
    ("run.sync_interval", "[run]\nsync_interval = 901\n"),
    ("gate_id", 'gate_id = ""\n'),
    ("db", 'db = "/"\n'),
    ("db", f'db = "{NO_HOME}"\n'),
    ("journal_db", f'journal_db = "sqlite:///{NO_HOME}"\n'),
    ("api.token_file", f'[api]\ntoken_file = "{NO_HOME}"\n'),
    ("journal.backup_dir", f'[journal]\nbackup_dir = "{NO_HOME}"\n'),
]


@pytest.mark.parametrize("command", [["status"], ["config", "check"], ["sync", "--once"],
                                     ["check", "ABC"], ["journal"]])
@pytest.mark.parametrize(("key", "text"), ENUMERATED, ids=[t for _k, t in ENUMERATED])
def test_cli_names_the_key_in_one_line_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        command: list[str], key: str, text: str) -> None:
    for var in [v for v in os.environ if v.startswith("GATE_")]:
        monkeypatch.delenv(var)
    if key != "db":
        monkeypatch.setenv("GATE_DB", str(tmp_path / "g.db"))
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["--config", str(path), *command]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [captured.err.strip()]
    assert captured.err.startswith(f"gate: configuration error: {key}: ")
    assert not (tmp_path / "g.db").exists()  # refused before anything was opened


@pytest.mark.parametrize("command", [["status"], ["config", "check"]])
@pytest.mark.parametrize("text", ['[reader]\nsource = "webcam"\n', "[upload]\nbatch_size = 0\n"])
def test_installed_gate_command_refuses_an_unknown_source_and_a_zero_batch(
        tmp_path: Path, command: list[str], text: str) -> None:
    """An unknown reader source and a zero upload batch, through a real ``gate`` process."""
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    proc = gate(*command, env={"GATE_CONFIG": str(path), "GATE_DB": str(tmp_path / "g.db")})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    key = "reader.source" if "webcam" in text else "upload.batch_size"
    assert proc.stderr.startswith(f"gate: configuration error: {key}: expected ")


def test_a_free_port_is_below_the_ephemeral_range_and_listens_on_every_address() -> None:
    """Outgoing connections take ephemeral ports: one of those picked for a listener could
    be gone before it binds, as parallel tests showed."""
    import socket

    from scanner.netrules import free_port

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(1024 < p < low for p in ports) and len(ports) > 1
    with socket.socket() as server:
        server.bind(("0.0.0.0", ports.pop()))
        server.listen()
