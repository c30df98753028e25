"""``gate setup``: the configuration it writes loads through the real loader, and the gate
it describes runs: a pty handheld's codes are decided by ``gate run`` against the simulator."""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from kits.gate import write_toml
from test_run_e2e import Daemon, Handheld, handheld, valid_barcodes  # noqa: F401

from scanner.cli.main import cli, main
from scanner.config import load_config
from scanner.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "NOTIFY_"))}


def token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.slow
def test_non_interactive_setup_then_gate_run_decides_a_pty_handhelds_codes(
        tmp_path: Path, sim_server, handheld: Handheld) -> None:  # noqa: F811
    config = tmp_path / "gate.toml"
    event = sim_server.world.event_ids[0]
    result = CliRunner().invoke(cli, [
        "setup", "--non-interactive", "--output", str(config),
        "--token-file", str(token_file(tmp_path, sim_server.token)), "--event", event,
        "--api-url", sim_server.url, "--gate-id", "fleet-7", "--db", str(tmp_path / "gate.db"),
        "--reader", f"serial:{handheld.port},name=hand", "--pin-factory", "mock",
        "--relay-pin", "17", "--web-port", "0"], env=clean_env())
    assert result.exit_code == 0, result.output
    assert f"wrote {config}: gate fleet-7, events {event}" in result.output
    env = clean_env() | {"GATE_CONFIG": str(config)}  # the token only from its file
    code = valid_barcodes(config, env, 1)[0]
    daemon = Daemon(env, tmp_path / "run.log")
    try:
        daemon.wait_log("starting: gate fleet-7")
        daemon.wait_log("sync .*delta|sync .*full")  # the port is open by then
        handheld.scan(code, "NOT-A-TICKET-0001")
        daemon.wait_log(r"decision \S+ GRANTED IN \S+ hand")
        daemon.wait_log(r"decision \S+ UNKNOWN_BARCODE IN \S+ hand")
    finally:
        assert daemon.signal(signal.SIGTERM) == 0


def test_setup_refuses_a_reader_the_loader_refuses_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    result = CliRunner().invoke(cli, [
        "setup", "--non-interactive", "--output", str(config),
        "--token-file", str(token_file(tmp_path, "t0k")),
        "--reader", "serial:/dev/ttyACM0,direction=SIDEWAYS"], env=clean_env())
    assert result.exit_code != 0
    assert "readers[0].direction: expected one of IN, OUT" in str(result.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


def test_an_output_that_cannot_be_written_is_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a file instead of a folder (as on a read-only disk) the draft can be neither
    written nor removed: one line, not the removal's traceback over the first error."""
    for name in [k for k in os.environ if k.startswith("GATE_")]:
        monkeypatch.delenv(name)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    target = blocker / "gate.toml"
    assert main(["setup", "--non-interactive", "--output", str(target),
                 "--token-file", str(token_file(tmp_path, "t0k"))]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"gate: configuration error: cannot write {target}: ")


def test_interactive_setup_whose_token_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """The token file beside the output, in a folder that cannot be made (as on a read-only
    disk): a configuration error, not write_private's traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["setup", "--output", str(blocker / "gate.toml")],
                                input="https://vivenu.com\ns3cr3t-token\n", env=clean_env())
    assert isinstance(result.exception, ConfigError), result.exception
    assert str(result.exception).startswith(f"cannot write {blocker / 'token'}: ")
    assert "s3cr3t-token" not in result.output + str(result.exception)


def test_setup_never_replaces_a_device_or_pipe_even_with_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, ``--output /dev/null --force`` replaced /dev/null with the configuration (a
    pipe stands in for it here)."""
    for name in [k for k in os.environ if k.startswith("GATE_")]:
        monkeypatch.delenv(name)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert main(["setup", "--non-interactive", "--force", "--output", str(pipe),
                 "--token-file", str(token_file(tmp_path, "t0k"))]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"gate: configuration error: cannot write {pipe}: not a regular file, and never "
        f"replaced by one"]
    assert stat.S_ISFIFO(pipe.stat().st_mode)


def test_setup_keeps_an_existing_config_without_force(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "gate.toml", {"gate_id": "kept"})
    result = CliRunner().invoke(cli, ["setup", "--non-interactive", "--output", str(config),
                                      "--token-file", str(token_file(tmp_path, "t"))],
                                env=clean_env())
    assert result.exit_code == 2 and "--force replaces it" in result.output
    assert config.read_text() == 'gate_id = "kept"\n'


def test_a_reader_spec_with_an_unknown_source_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["setup", "--non-interactive", "--output",
                                      str(tmp_path / "g.toml"), "--reader", "laser:/dev/x"],
                                env=clean_env())
    assert result.exit_code == 2 and "the source is one of camera, picamera2" in result.output


@pytest.mark.skipif(sys.platform != "linux", reason="ptys and /dev listings")
def test_interactive_setup_hides_the_token_and_writes_it_0600(tmp_path: Path, sim_server,
                                                              monkeypatch) -> None:
    """Asked: URL, token (hidden), events from the server's listing, readers (none found
    here: none), pin factory and pins, kiosk PIN."""
    from hardware.devices import Devices

    monkeypatch.setattr("scanner.cli.setup_ask.discover", lambda: Devices())
    config = tmp_path / "etc" / "gate.toml"
    answers = "\n".join([sim_server.url, sim_server.token, "1", "mock", "17", "", "", "",
                         "", "", "2468", "2468"]) + "\n"
    result = CliRunner().invoke(cli, ["setup", "--output", str(config)], input=answers,
                                env=clean_env())
    assert result.exit_code == 0, result.output
    assert sim_server.token not in result.output
    token = tmp_path / "etc" / "token"
    assert token.read_text().strip() == sim_server.token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert sim_server.token not in config.read_text()
    loaded = load_config(config, env={})
    assert loaded.events == (sim_server.world.event_ids[0],)
    assert loaded.readers == () and loaded.outputs.relay_pin == 17
    assert loaded.web.pin_file == str(tmp_path / "etc" / "kiosk.pin")
    assert loaded.api.token.reveal() == sim_server.token
