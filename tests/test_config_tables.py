"""The tables the daemon, kiosk and mesh read: readers, outputs, web, run, mesh; and
``gate config check``, which prints what the gate will use."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import typing
from pathlib import Path

import pytest

from scanner.cli.config_cmd import render_toml
from scanner.cli.main import main
from scanner.config import (
    DEFAULT_PASSAGE_TIMEOUT,
    DEFAULT_RELAY_PULSE_MS,
    GateConfig,
    ReaderConfig,
    load_config,
    load_config_sources,
)
from scanner.config.toml import document
from scanner.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "gate.example.toml"


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> GateConfig:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env=env or {})


def test_single_reader_table_is_a_one_element_list(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[reader]\nsource = "serial"\nport = "/dev/ttyUSB0"\n')
    assert len(config.readers) == 1
    assert config.reader is config.readers[0]
    assert (config.reader.source, config.reader.port) == ("serial", "/dev/ttyUSB0")


def test_without_reader_tables_there_is_one_default_reader() -> None:
    assert load_config(env={}).readers == (ReaderConfig(),)


def test_readers_list_keeps_each_readers_source_and_direction(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[[readers]]\nname = "in"\nsource = "serial"\n'
                                 '[[readers]]\nname = "out"\nsource = "camera"\n'
                                 'direction = "OUT"\nlane = "north"\n')
    assert [(r.name, r.source, r.direction, r.lane) for r in config.readers] == [
        ("in", "serial", "IN", "main"), ("out", "camera", "OUT", "north")]


def test_a_mistake_in_the_second_reader_is_named_by_position(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^readers\[1\]\.direction: expected one of IN, OUT"):
        load_text(tmp_path, '[[readers]]\nsource = "serial"\n'
                            '[[readers]]\nsource = "camera"\ndirection = "out"\n')


def test_reader_and_readers_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^readers: give either one \[reader\] table"):
        load_text(tmp_path, '[reader]\nsource = "serial"\n[[readers]]\nsource = "camera"\n')


def test_two_readers_with_one_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^readers\[1\]\.name: 'gate' is already readers\[0\]"):
        load_text(tmp_path, '[[readers]]\nname = "gate"\nsource = "serial"\n'
                            '[[readers]]\nname = "gate"\nsource = "camera"\n')


def test_only_one_reader_may_read_stdin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^readers\[1\]\.source: only one reader"):
        load_text(tmp_path, '[[readers]]\nname = "a"\n[[readers]]\nname = "b"\n')


def test_hid_reader_without_device_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^reader\.device: the hid source needs"):
        load_text(tmp_path, '[reader]\nsource = "hid"\n')


def test_outputs_defaults_follow_the_daemon_issue() -> None:
    outputs = load_config(env={}).outputs
    assert outputs.relay_pulse_ms == DEFAULT_RELAY_PULSE_MS == 500
    assert outputs.passage_timeout == DEFAULT_PASSAGE_TIMEOUT == 5.0
    assert outputs.relay_active_high is True
    assert outputs.relay_pin is None and outputs.fire_alarm_pin is None


@pytest.mark.parametrize("pin", [0, 17, "GPIO17", "BCM4", "BOARD11", "J8:11", "wpi0"])
def test_pins_take_numbers_and_gpiozero_names(tmp_path: Path, pin: int | str) -> None:
    config = load_text(tmp_path, f"[outputs]\nrelay_pin = {json.dumps(pin)}\n")
    assert config.outputs.relay_pin == pin


def test_one_pin_for_two_outputs_is_refused_across_spellings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^outputs\.red_pin: pin 'GPIO17' is already "
                                          r"outputs\.relay_pin"):
        load_text(tmp_path, '[outputs]\nrelay_pin = 17\nred_pin = "GPIO17"\n')


def test_web_defaults_to_loopback_8080_without_open_status() -> None:
    web = load_config(env={}).web
    assert (web.host, web.port, web.pin_file, web.status_open) == \
        ("127.0.0.1", 8080, None, False)


def test_web_beyond_loopback_needs_a_pin_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^web\.pin_file: required when web\.host"):
        load_text(tmp_path, '[web]\nhost = "0.0.0.0"\n')
    config = load_text(tmp_path, '[web]\nhost = "0.0.0.0"\npin_file = "/etc/g/pin"\n')
    assert config.web.host == "0.0.0.0"


def test_run_sync_interval_follows_the_server_unless_set(tmp_path: Path) -> None:
    assert load_config(env={}).run.sync_interval is None
    assert load_text(tmp_path, "[run]\nsync_interval = 30\n").run.sync_interval == 30.0


@pytest.mark.parametrize("key", ["username", "password"])
def test_mesh_credentials_are_refused_in_the_file_without_echo(tmp_path: Path,
                                                               key: str) -> None:
    with pytest.raises(ConfigError, match=f"^mesh.{key}: not allowed") as info:
        load_text(tmp_path, f'[mesh]\n{key} = "s3cr3t-value"\n')
    assert "s3cr3t-value" not in str(info.value)


def test_mesh_url_comes_from_the_environment_and_needs_a_key(tmp_path: Path) -> None:
    env = {"GATE_MESH_URL": "mqtts://broker.lan:8883"}
    with pytest.raises(ConfigError, match=r"^mesh\.key_file: required"):
        load_config(env=env)
    config = load_text(tmp_path, '[mesh]\nkey_file = "/etc/g/mesh.key"\n', env=env)
    assert config.mesh.url == "mqtts://broker.lan:8883"


def test_mesh_plain_mqtt_with_credentials_is_refused_beyond_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^mesh\.url: plain mqtt:// would send"):
        load_text(tmp_path, '[mesh]\nurl = "mqtt://broker.lan"\nkey_file = "/k"\n'
                            'credentials_file = "/c"\n')
    local = load_text(tmp_path, '[mesh]\nurl = "mqtt://127.0.0.1:1883"\nkey_file = "/k"\n'
                                'credentials_file = "/c"\n')
    assert local.mesh.credentials_file == "/c"


def test_mesh_url_with_a_password_is_refused_without_echo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^mesh\.url: must not carry a user") as info:
        load_text(tmp_path, '[mesh]\nurl = "mqtts://gate:s3cr3t@broker"\nkey_file = "/k"\n')
    assert "s3cr3t" not in str(info.value)


def test_a_mesh_url_with_an_unclosed_ipv6_bracket_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^mesh\.url: expected a URL such as mqtts://host"):
        load_text(tmp_path, '[mesh]\nurl = "mqtts://[fe80::1"\nkey_file = "/k"\n')


def test_journal_db_comes_from_its_variable() -> None:
    assert load_config(env={}).journal_db == ""
    assert load_config(env={"GATE_JOURNAL_DB": "/var/j.db"}).journal_db == "/var/j.db"


def test_config_check_toml_loads_back_to_the_same_configuration(tmp_path: Path) -> None:
    text = ('gate_id = "north-1"\nevents = ["e1"]\n[outputs]\nrelay_pin = "GPIO17"\n'
            '[[readers]]\nname = "in"\nsource = "serial"\nterminator = "\\u0003"\n'
            '[[readers]]\nname = "out"\nsource = "camera"\ndirection = "OUT"\n')
    config = load_text(tmp_path, text)
    again = tmp_path / "again.toml"
    again.write_text(render_toml(document(config), {}), encoding="utf-8")
    assert load_config(again, env={}) == config


def test_config_check_shows_the_token_only_as_set(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("GATE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("GATE_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("GATE_DB", "/var/lib/g.db")
    assert main(["config", "check"]) == 0
    text = capsys.readouterr().out
    assert "# token: set  # env GATE_API_TOKEN" in text
    assert 'db = "/var/lib/g.db"  # env GATE_DB' in text
    assert main(["config", "check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["api"]["token"] == "set"
    assert doc["sources"]["db"] == "env GATE_DB"
    assert "s3cr3t-value" not in text + json.dumps(doc)


def test_sources_name_the_file_and_reader_keys(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text('[upload]\nbatch_size = 10\n[reader]\nsource = "serial"\n')
    _config, sources = load_config_sources(path, env={"GATE_ID": "x"})
    assert sources == {"upload.batch_size": "file", "reader.source": "file",
                       "gate_id": "env GATE_ID"}


def test_example_config_has_every_table_and_its_optional_lines_load(tmp_path: Path) -> None:
    """Uncommenting every ``#key = value`` line of the example still gives a valid gate."""
    text = EXAMPLE.read_text(encoding="utf-8")
    hints = typing.get_type_hints(GateConfig)
    tables = {name for name, kind in hints.items() if dataclasses.is_dataclass(kind)}
    uncommented = re.sub(r"(?m)^#(?=[a-z_\[])", "", text)
    # The example reader tables replace the example's `readers = []` (none yet).
    uncommented = re.sub(r"(?m)^readers = \[\].*$", "", uncommented)
    assert tables | {"readers"} <= set(tomllib.loads(uncommented))
    config = load_text(tmp_path, uncommented, env={"GATE_API_TOKEN": "t"})
    assert config.mesh.url.startswith("mqtts://")
    assert [r.source for r in config.readers] == ["serial", "picamera2", "hid"]


def test_the_example_config_has_no_readers_until_set_up() -> None:
    assert load_config(EXAMPLE, env={"GATE_API_TOKEN": "t"}).readers == ()


def test_readers_as_an_empty_list_means_none_yet(tmp_path: Path) -> None:
    config = load_text(tmp_path, "readers = []\n")
    assert config.readers == () and config.reader == ReaderConfig()


@pytest.mark.parametrize("text", ["readers = [1, 2]\n", "reader = 5\n"])
def test_a_reader_given_as_a_scalar_is_named(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"^readers?(\[0\])?: expected a table"):
        load_text(tmp_path, text)


@pytest.mark.parametrize("source,key,value", [("serial", "port", "/dev/ttyACM0"),
                                              ("hid", "device", "/dev/input/event3"),
                                              ("camera", "camera", "0")])
def test_two_readers_on_one_device_are_refused(tmp_path: Path, source: str, key: str,
                                               value: str) -> None:
    """Two readers on one serial port would each get a share of its codes, in their own
    directions."""
    table = f'[[readers]]\nsource = "{source}"\n{key} = "{value}"\n'
    with pytest.raises(ConfigError, match=rf"^readers\[1\]\.{key}: .* is already readers\[0\]"):
        load_text(tmp_path, table + table.replace("[[readers]]\n",
                                                  '[[readers]]\ndirection = "OUT"\n'))
