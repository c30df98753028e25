"""The one TOML writer (scanner.config.toml): what it writes, the real loader reads back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from kits.gate import MakeGate

from scanner.config import (
    ApiConfig,
    GateConfig,
    JournalConfig,
    MeshConfig,
    OutputsConfig,
    ReaderConfig,
    RunConfig,
    Secret,
    WebConfig,
    load_config,
    toml,
)
from scanner.config.zones import parse_zones


def load_back(tmp_path: Path, doc: dict[str, Any], env: dict[str, str] | None = None
              ) -> GateConfig:
    path = tmp_path / "gate.toml"
    path.write_text(toml.dumps(doc), encoding="utf-8")
    return load_config(path, env=env or {})


def test_a_full_configuration_loads_back_to_itself(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    token.chmod(0o600)
    config = GateConfig(
        gate_id="north-1", db=str(tmp_path / "gate.db"), journal_db=str(tmp_path / "j.db"),
        events=("ev-1", "ev-2"),
        api=ApiConfig(url="https://vivenu.example", token_file=str(token), retries=2,
                      connect_timeout=0.25),
        readers=(ReaderConfig(name="in", source="serial", port="/dev/ttyACM1",
                              terminator="\u0003", prefix='"q"\\'),
                 ReaderConfig(name="out", source="camera", direction="OUT", lane="side",
                              formats=("QRCode",), fps=12.5)),
        outputs=OutputsConfig(pin_factory="mock", relay_pin=17, green_pin="GPIO27",
                              relay_active_high=False),
        web=WebConfig(host="0.0.0.0", port=0, pin_file="/etc/gate/kiosk.pin",
                      language="de"),
        run=RunConfig(sync_interval=30.0, watchdog=None, sync_process=False),
        mesh=MeshConfig(url="mqtts://broker.lan", key_file="/etc/gate/mesh.key",
                        credentials_file="/etc/gate/mesh.cred", minter="north-1"),
        journal=JournalConfig(backup_dir="/media/stick", backup_keep=3, backup_at="02:30"),
        zone="lounge",
        zones=parse_zones([{"id": "grounds", "capacity": 20000, "reset_at": "04:00"},
                           {"id": "lounge", "name": "VIP lounge", "parent": "grounds",
                            "capacity": 120, "when_full": "warn", "reentry_after": 30}]))
    # The token is read from its file, not the TOML: the loaded one carries it.
    expected = dataclasses.replace(config, api=dataclasses.replace(config.api,
                                                                   token=Secret("t0ken")))
    assert load_back(tmp_path, toml.document(config)) == expected


def test_the_token_is_a_comment_and_never_its_value(tmp_path: Path) -> None:
    config = GateConfig(api=ApiConfig(token=Secret("s3cr3t-value")))
    text = toml.dumps(toml.document(config))
    assert "# token: set" in text and "s3cr3t-value" not in text
    assert load_back(tmp_path, toml.document(config)).api.token == Secret("")


def test_none_is_a_comment_and_loads_back_as_the_default(tmp_path: Path) -> None:
    text = toml.dumps({"outputs": {"relay_pin": None, "pin_factory": "mock"}})
    assert "# relay_pin = (unset)" in text
    assert load_back(tmp_path, {"outputs": {"relay_pin": None}}).outputs.relay_pin is None


def test_no_readers_is_an_empty_array_not_the_default_stdin_reader(tmp_path: Path) -> None:
    assert toml.dumps({"readers": []}) == "readers = []\n"
    assert load_back(tmp_path, {"readers": []}).readers == ()


def test_values_come_before_tables_whatever_the_order_given(tmp_path: Path) -> None:
    doc = {"web": {"port": 0}, "readers": [{"source": "stdin"}], "gate_id": "late"}
    config = load_back(tmp_path, doc)
    assert (config.gate_id, config.web.port, config.readers) == ("late", 0, (ReaderConfig(),))


def test_notes_follow_their_line() -> None:
    text = toml.dumps({"db": "/g.db", "readers": [{"source": "stdin"}, {"source": "hid"}]},
                      {"db": "env GATE_DB", "readers[1].source": "file"})
    assert 'db = "/g.db"  # env GATE_DB' in text
    assert text.count('source = "hid"  # file') == 1


def test_a_value_toml_cannot_spell_is_refused() -> None:
    with pytest.raises(TypeError, match="no TOML value for object"):
        toml.dumps({"db": object()})


def test_the_tests_gate_is_built_from_a_file_the_loader_read(tmp_path: Path,
                                                              make_gate: MakeGate) -> None:
    """kits.gate: overrides go through the writer and the loader; the token never into
    the file."""
    gate = make_gate(tmp_path, gate_id="B", lookup={"deadline_ms": 250},
                     api=ApiConfig(url="https://vivenu.example", token=Secret("t0ken")))
    [written] = tmp_path.glob("written-*.toml")
    assert load_config(written, env={"GATE_API_TOKEN": "t0ken"}) == gate.config
    assert (gate.config.gate_id, gate.config.lookup.deadline_ms) == ("B", 250)
    assert gate.config.api.token == Secret("t0ken") and "t0ken" not in written.read_text()
