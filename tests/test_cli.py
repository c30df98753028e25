"""The ``gate`` command as an operator meets it: one clear line and an exit code, no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kits.gate import write_toml


def gate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "scanner.cli.main", *args], env=base, cwd=cwd,
                          text=True, capture_output=True, timeout=timeout, check=False)


def test_help_lists_every_command_without_importing_them() -> None:
    proc = gate("--help")
    assert proc.returncode == 0
    for name in ("sync", "status", "check", "scan", "bench", "demo", "sim", "tickets"):
        assert f"  {name} " in proc.stdout
    # --help must not pay for OpenCV: measured by what it imported
    code = ("import sys; from scanner.cli.main import main; main(['--help']); "
            "print('cv2' in sys.modules, 'httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True,
                         check=True).stdout
    assert out.strip().endswith("False False")


def test_bad_config_value_is_one_line_exit_2(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "gate.toml", {"upload": {"batch_size": "lots"}})
    proc = gate("status", env={"GATE_CONFIG": str(config), "GATE_DB": str(tmp_path / "g.db")})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gate: configuration error: upload.batch_size: expected an integer from 1 to 1000, "
        "got 'lots'"]
    assert "Traceback" not in proc.stderr


def test_unreachable_server_is_one_line_exit_1(tmp_path: Path) -> None:
    env = {"GATE_API_URL": "http://127.0.0.1:9", "GATE_API_TOKEN": "tok-should-not-show",
           "GATE_DB": str(tmp_path / "g.db"), "GATE_EVENTS": "evt-1"}
    config = write_toml(tmp_path / "gate.toml", {"api": {"retries": 0, "connect_timeout": 0.5}})
    env["GATE_CONFIG"] = str(config)
    proc = gate("events", env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("gate: error:")]
    assert len(errors) == 1
    assert "Traceback" not in proc.stderr
    assert "tok-should-not-show" not in proc.stdout + proc.stderr


def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    env = {"GATE_API_URL": "http://vivenu.example", "GATE_API_TOKEN": "tok",
           "GATE_DB": str(tmp_path / "g.db")}
    proc = gate("events", env=env)
    assert proc.returncode == 2  # a configuration mistake, like any other
    assert "https" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", ["sqlite:////proc/no-such-dir/gate.db", "nosuchdialect://x/y"])
def test_unusable_database_url_is_one_line(tmp_path: Path, url: str) -> None:
    proc = gate("status", env={"GATE_DB": url})
    assert proc.returncode == 1
    assert proc.stderr.startswith("gate: error:")
    assert "Traceback" not in proc.stderr


def test_status_on_a_new_store_reports_zero_and_never(tmp_path: Path) -> None:
    import json

    proc = gate("status", "--json", env={"GATE_DB": str(tmp_path / "g.db"), "GATE_EVENTS": "e1"})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tickets"] == 0
    assert doc["events"]["e1"]["tickets"] == 0
    assert doc["events"]["e1"]["last_sync"] is None
    assert doc["queue"]["depth"] == 0


def stop_after(command: str, marker: str, env: dict[str, str]) -> None:
    """Run the loop ``gate command`` until its log says ``marker``, then SIGTERM it: it
    exits 0, without a traceback."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "scanner.cli.main", command], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if marker in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in rest


def loop_env(tmp_path: Path, sim_server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env.update(GATE_API_URL=sim_server.url, GATE_API_TOKEN="sim-token",
               GATE_DB=str(tmp_path / "g.db"), **extra)
    return env


@pytest.mark.slow
def test_sync_loop_stops_cleanly_on_sigterm(tmp_path: Path, sim_server) -> None:
    """systemd stops the service with SIGTERM: the loop ends with exit 0, not a traceback."""
    # once the first run has synced an event
    stop_after("sync", "scanner.sync: sync evt-", loop_env(tmp_path, sim_server))


@pytest.mark.slow
def test_upload_loop_uploads_then_stops_cleanly_on_sigterm(tmp_path: Path, sim_server) -> None:
    """``gate upload`` without --once is gate run's upload job alone: it drains what is
    journaled and, on SIGTERM, exits 0 without a traceback."""
    env = loop_env(tmp_path, sim_server, GATE_EVENTS=sim_server.world.event_ids[0])
    assert gate("check", "UNKNOWN-000001", env=env).returncode == 1  # journaled, pending
    stop_after("upload", "uploaded 1 scan(s)", env)
    assert [scan["barcode"] for scan in sim_server.world.scans] == ["UNKNOWN-000001"]


EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "gate.example.toml"


@pytest.mark.slow
def test_config_check_fails_in_one_line_where_gate_run_would_on_the_pin_factory(
        tmp_path: Path) -> None:
    """A wired pin on a factory that cannot start (here: no lgpio module) is exit 2 from
    config check as from gate run; --no-hardware checks the file alone."""
    config = write_toml(tmp_path / "gate.toml", {
        "db": str(tmp_path / "g.db"), "readers": [], "web": {"port": 0},
        "outputs": {"pin_factory": "pigpio", "relay_pin": 17}})
    env = {"GATE_CONFIG": str(config)}
    checked, ran = gate("config", "check", env=env), gate("run", env=env, timeout=60)
    assert (checked.returncode, ran.returncode) == (2, 2)
    line = "gate: configuration error: outputs: pin factory 'pigpio' cannot start"
    assert checked.stderr.startswith(line) and ran.stderr.splitlines()[-1].startswith(line)
    assert len(checked.stderr.splitlines()) == 1 and checked.stdout == ""
    assert gate("config", "check", "--no-hardware", env=env).returncode == 0


@pytest.mark.slow
def test_config_check_opens_each_readers_device(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        config, camera = tmp_path / "gate.toml", str(tmp_path / "cam.avi")

        def readers(port: str) -> Path:
            return write_toml(config, {"readers": [{"source": "serial", "port": port},
                                                   {"source": "camera", "camera": camera}]})

        readers(os.ttyname(slave))
        missing = gate("config", "check", env={"GATE_CONFIG": str(config)})
        (tmp_path / "cam.avi").write_bytes(b"")
        present = gate("config", "check", env={"GATE_CONFIG": str(config)})
        readers("/dev/ttyNO-SUCH-SCANNER")
        no_port = gate("config", "check", env={"GATE_CONFIG": str(config)})
    finally:
        os.close(master)
        os.close(slave)
    assert missing.returncode == 2 and missing.stderr == (
        f"gate: configuration error: readers[1].camera: cannot open {tmp_path / 'cam.avi'}: "
        f"no such file: {tmp_path / 'cam.avi'}\n")
    assert present.returncode == 0, present.stderr
    assert no_port.returncode == 2 and no_port.stderr.startswith(
        "gate: configuration error: readers[0].port: cannot open /dev/ttyNO-SUCH-SCANNER: ")
    assert len(no_port.stderr.splitlines()) == 1


@pytest.mark.slow
def test_the_example_config_runs_without_readers_and_says_so_once(tmp_path: Path,
                                                                  sim_server) -> None:
    """As installed (no placeholder devices, lgpio absent, nothing wired): gate run keeps
    running, serves its page and syncs, with one WARNING line and no OpenCV output."""
    import signal

    config = tmp_path / "gate.toml"
    config.write_text(EXAMPLE.read_text().replace("port = 8080", "port = 0"))
    env = loop_env(tmp_path, sim_server, GATE_CONFIG=str(config))
    assert gate("config", "check", env=env).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if len([x for x in lines if "scanner.sync: sync evt-" in x]) >= 2:
            break  # two syncs: well past start-up
    proc.send_signal(signal.SIGTERM)
    lines += proc.stderr.read().splitlines(keepends=True)
    assert proc.wait(timeout=30) == 0
    warnings = [x for x in lines if " WARNING " in x]
    assert len(warnings) == 1 and "has no readers (readers = [])" in warnings[0], lines
    assert any("kiosk page on http://127.0.0.1:" in x for x in lines)
    assert not [x for x in lines if "WARN" in x and x not in warnings]  # OpenCV's [ WARN:0]


@pytest.mark.slow
def test_an_unreachable_server_is_said_at_once_with_how_long_the_retries_take(
        tmp_path: Path) -> None:
    """A command waiting out its retries says so in one line first, not in silence."""
    config = write_toml(tmp_path / "gate.toml", {"api": {"retries": 2, "connect_timeout": 0.5}})
    proc = gate("events", env={"GATE_API_URL": "http://127.0.0.1:9", "GATE_API_TOKEN": "tok",
                               "GATE_DB": str(tmp_path / "g.db"), "GATE_CONFIG": str(config)})
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    # retries 2 with the default 0.5 s backoff: 0.5 + 1 s and the jitter's mean, about 2 s
    assert re.fullmatch(r"\S+ \S+ WARNING scanner\.vivenu: cannot reach http://127\.0\.0\.1:9 "
                        r"\(ConnectError\); retrying 2 time\(s\) for up to about 2 s",
                        lines[0]), lines[0]
    assert lines[1] == ("gate: error: GET /events: ConnectError: [Errno 111] Connection "
                        "refused; gave up after 3 attempt(s)")


def test_an_unknown_event_names_gate_events(tmp_path: Path, sim_server) -> None:
    """A mistyped event id is a 404 on its ticket list: the line says where to look."""
    env = loop_env(tmp_path, sim_server, GATE_EVENTS="evt-typo")
    proc = gate("sync", "--once", env=env)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "gate: error: event evt-typo not found on vivenu; `gate events` lists this token's "
        "events")


def test_control_characters_in_a_config_error_are_escaped(tmp_path: Path) -> None:
    """An unknown key is named as written: an ESC sequence in it reached the terminal raw,
    and a file name with a newline in it split the error's one line in two."""
    config = tmp_path / "gate.toml"
    config.write_text('"\\u001b[2J" = 1\n', encoding="utf-8")
    key = gate("--config", str(config), "status")
    missing = gate("--config", str(tmp_path / "a\nb.toml"), "status")
    assert (key.returncode, missing.returncode) == (2, 2)
    assert key.stderr.splitlines() == ["gate: configuration error: \\x1b[2J: unknown key"]
    assert missing.stderr.splitlines() == [
        f"gate: configuration error: --config: no such file: {tmp_path}/a\\x0ab.toml"]


@pytest.mark.parametrize("command", ["sync", "upload"])
def test_json_without_once_is_refused_rather_than_looping(tmp_path: Path, command: str) -> None:
    """Without --once the command loops until stopped and never prints the report: a
    script that asked for the JSON waited for ever."""
    proc = gate(command, "--json", env={"GATE_DB": str(tmp_path / "g.db")}, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "Error: --json needs --once"


def test_sim_on_a_port_already_taken_is_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = gate("sim", "--port", str(port), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"Error: cannot serve on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize("args", [["--port", "99999"], ["--tickets", "10" + "0" * 18]])
def test_sim_refuses_a_port_or_ticket_count_out_of_range(args: list[str]) -> None:
    """A port past 65535 ended in an OverflowError traceback; a count of 10**19 tickets
    would be generated for ever before serving."""
    proc = gate("sim", *args, timeout=60)
    assert proc.returncode == 2
    assert f"Invalid value for '{args[0]}'" in proc.stderr and "Traceback" not in proc.stderr


def test_config_check_reads_the_files_gate_run_reads_at_start(tmp_path: Path) -> None:
    """A PIN hash, venue key or supervisor key file that gate run would refuse at start
    used to pass config check as "configuration OK"."""
    readable = tmp_path / "pin"
    readable.write_text("scrypt$not-a-hash\n")
    readable.chmod(0o644)
    config = write_toml(tmp_path / "gate.toml", {
        "db": str(tmp_path / "g.db"), "readers": [],
        "web": {"pin_file": str(readable), "supervisor_pin_file": str(tmp_path)},
        "mesh": {"url": "mqtt://127.0.0.1:1", "key_file": str(tmp_path / "no-key"),
                 "supervisor_key": "/etc/hostname"}})
    proc = gate("--config", str(config), "config", "check", "--no-hardware")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert [line.split(": ")[2] for line in proc.stderr.splitlines()] == [
        "web.pin_file", "web.supervisor_pin_file", "mesh.key_file", "mesh.supervisor_key"]
    assert "configuration OK" not in proc.stderr


def test_config_check_lists_every_mistake_at_once_exit_2(tmp_path: Path) -> None:
    """Each mistake is its own line naming its key, all in one run, not one per try."""
    config = tmp_path / "gate.toml"
    # Written by hand: a wrong key (retrys) is what the writer never writes.
    config.write_text('gate_id = ""\n'
                      "[upload]\nbatch_size = 0\ninterval = 'soon'\n"
                      "[api]\nretrys = 3\n"
                      "[[readers]]\nsource = 'serial'\nport = '/dev/ttyACM0'\n"
                      "[[readers]]\nsource = 'serial'\nport = '/dev/ttyACM0'\n"
                      "direction = 'SIDEWAYS'\n", encoding="utf-8")
    proc = gate("--config", str(config), "config", "check")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "gate: configuration error: gate_id: expected a printable name of at most 64 "
        "characters, without surrounding spaces or any of / + # : (it names the gate's mesh "
        "topics and broker user), got ''",
        "gate: configuration error: upload.batch_size: expected an integer from 1 to 1000, "
        "got 0",
        "gate: configuration error: upload.interval: expected a number > 0, got 'soon'",
        "gate: configuration error: api.retrys: unknown key",
        "gate: configuration error: readers[1].direction: expected one of IN, OUT, got "
        "'SIDEWAYS'",
        "gate: configuration error: readers[1].port: '/dev/ttyACM0' is already readers[0]",
    ]


@pytest.mark.parametrize(("how", "named"), [("flag", "--config"), ("env", "GATE_CONFIG")])
def test_a_missing_config_file_is_blamed_on_what_named_it(tmp_path: Path, how: str,
                                                          named: str) -> None:
    missing = tmp_path / "nope.toml"
    if how == "flag":
        proc = gate("--config", str(missing), "status")
    else:
        proc = gate("status", env={"GATE_CONFIG": str(missing)})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"gate: configuration error: {named}: no such file: {missing}"]


def test_gate_check_logs_the_decision_line_as_the_daemon_does(tmp_path: Path,
                                                              sim_server) -> None:
    env = loop_env(tmp_path, sim_server, GATE_EVENTS=sim_server.world.event_ids[0])
    proc = gate("check", "UNKNOWN-000001", env=env)
    assert proc.returncode == 1
    decided = [line for line in proc.stderr.splitlines() if "scanner.decision" in line]
    assert len(decided) == 1, proc.stderr
    assert re.fullmatch(r"\S+ \S+ INFO scanner\.decision: decision \S+ UNKNOWN_BARCODE IN "
                        r"UNKNOWN-000001 cli: .+ \(\d+\.\d ms\)", decided[0]), decided[0]


def test_status_without_a_gate_id_or_a_daemon_says_so(tmp_path: Path) -> None:
    proc = gate("status", env={"GATE_DB": str(tmp_path / "g.db")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        "this gate (gate_id not set): 0 tickets in the store",
        "daemon: NOT RUNNING (gate run has not run with this store)"]
