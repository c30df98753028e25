"""What ships to a Raspberry Pi: the scripts parse, the unit passes systemd's own checks, and
install.sh installs, rolls back and installs offline in a fake root with no systemd running."""

from __future__ import annotations

import http.server
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kits.gate import write_toml

from scanner.build import version

# The installs share a bundle built once per worker: on one worker, it is built once. The
# whole file goes with it, which makes the group one of the largest, and xdist (loadgroup)
# hands out the largest groups first: the bundle, minutes long, starts with the run.
pytestmark = pytest.mark.xdist_group("deploy")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["run", ".ci/run", "deploy/bootstrap.sh", "deploy/install.sh", "deploy/kiosk.sh",
           "deploy/kiosk-launch.sh", "deploy/bundle.sh", "deploy/lock.sh",
           "deploy/arm64-check.sh"]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
INSTALLED_GATE = "/opt/gate-scanner/current/.venv/bin/gate"
MAX_EXPOSURE = 3.0  # the unit's goal for systemd-analyze security (lower is tighter)


@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_scripts_parse(script: str) -> None:
    proc = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    gate = Path(sys.executable).with_name("gate")  # the installed path does not exist here
    for unit in UNITS:
        text = unit.read_text(encoding="utf-8")
        assert INSTALLED_GATE in text
        (tmp_path / unit.name).write_text(text.replace(INSTALLED_GATE, str(gate)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           *map(str, sorted(tmp_path.glob("*.service")))],
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_install_sets_up_the_kiosk_through_kiosk_sh() -> None:
    script = (ROOT / "deploy" / "install.sh").read_text(encoding="utf-8")
    assert any("--kiosk" in line for line in script.splitlines()[:10])  # in the header
    assert re.search(r"^\s+--kiosk\)", script, re.M)
    assert re.search(r"/deploy/kiosk\.sh\"? \$\{kiosk_user", script)


def test_the_daemon_is_the_one_unit() -> None:
    assert [unit.name for unit in UNITS] == ["gate-scanner.service"]


def test_units_run_commands_that_exist() -> None:
    from scanner.cli.main import COMMANDS

    for unit in UNITS:
        exec_line = next(line for line in unit.read_text().splitlines()
                         if line.startswith("ExecStart="))
        command = exec_line.split()[1]
        assert command in COMMANDS, exec_line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_units_are_sandboxed_to_an_exposure_of_at_most_three(unit: Path) -> None:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                          capture_output=True, text=True)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    if found is None and "--offline" in proc.stderr:
        pytest.skip("this systemd-analyze cannot judge a unit file offline")
    assert found is not None, proc.stdout + proc.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE


def test_example_config_loads_with_every_key_known() -> None:
    from scanner.config import load_config

    # GATE_API_TOKEN wins over the example's token file, which exists only on a gate
    config = load_config(ROOT / "deploy" / "gate.example.toml", env={"GATE_API_TOKEN": "t"})
    assert config.gate_id == "north-1"
    assert config.api.token_file == "/etc/gate-scanner/token"


def unit_settings(name: str = "gate-scanner.service") -> dict[str, list[str]]:
    """Every Key=value of a unit file, values in file order per key."""
    settings: dict[str, list[str]] = {}
    for line in (ROOT / "systemd" / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_a_configuration_error_stops_the_unit_instead_of_a_restart_loop() -> None:
    unit = unit_settings()
    assert unit["Restart"] == ["always"]  # a crash still restarts
    assert unit["RestartPreventExitStatus"] == ["2"]


def test_gate_run_exits_2_on_a_configuration_error(tmp_path: Path) -> None:
    """The exit code RestartPreventExitStatus=2 relies on, from the real command."""
    config = write_toml(tmp_path / "gate.toml", {"upload": {"batch_size": "lots"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    proc = subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                           "run"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("gate: configuration error: upload.batch_size")


def test_the_unit_reaches_the_pis_uart_and_usb_serial_and_gpio() -> None:
    allowed = {value.split()[0] for value in unit_settings()["DeviceAllow"]}
    # ttyAMA: the PL011 UART (/dev/serial0 on most Pis); /dev/ttyS0: the mini UART
    assert {"char-ttyAMA", "/dev/ttyS0", "char-ttyACM", "char-ttyUSB",
            "char-gpiochip"} <= allowed
    assert unit_settings()["DevicePolicy"] == ["closed"]


def test_lgpio_works_in_the_state_directory() -> None:
    """lgpio writes into LG_WD; under ProtectSystem=strict only the StateDirectory is
    writable."""
    unit = unit_settings()
    state = f"%S/{unit['StateDirectory'][0]}"
    assert f"LG_WD={state}" in unit["Environment"]
    assert unit["WorkingDirectory"] == [state]
    assert unit["ProtectSystem"] == ["strict"]


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_the_lock_pins_every_dependency_with_hashes(arch: str) -> None:
    """Each requirement of pyproject that applies on `arch` (lgpio on aarch64 only) is pinned
    in that lock, and every pin has a hash, so `pip install --require-hashes` accepts it."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = (ROOT / "deploy" / f"requirements-{arch}.lock").read_text(encoding="utf-8")
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M))
    pinned = {canonicalize_name(name) for name in pins}
    assert len(re.findall(r"^\S+==\S+ \\\n\s+--hash=sha256:", lock, re.M)) == len(pins)
    target = {"platform_machine": arch, "sys_platform": "linux", "python_version": "3.11",
              "python_full_version": "3.11.2", "platform_system": "Linux"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = {canonicalize_name(req.name) for req in map(Requirement,
                                                         project["project"]["dependencies"])
              if req.marker is None or req.marker.evaluate(target)}
    assert wanted <= pinned, wanted - pinned
    assert ("lgpio" in pinned) == (arch == "aarch64")


# --- install.sh in a fake root --------------------------------------------------------------

OFFLINE_ENV = {name: "http://127.0.0.1:9" for name in
               ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
OFFLINE_ENV["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


def install(root: Path, *args: str, offline: bool = False,
            byte_compile: bool = True) -> subprocess.CompletedProcess[str]:
    """install.sh into ``root``; without ``byte_compile`` pip writes no bytecode (a release
    no test runs Python from: pip's compiling is about a third of an install's CPU)."""
    cmd = [str(ROOT / "deploy" / "install.sh"), "--root", str(root), *args]
    env = dict(os.environ)
    if not byte_compile:
        env["PIP_COMPILE"] = "0"  # pip's --no-compile (PIP_NO_COMPILE=1 means the opposite)
    if offline:
        env.update(OFFLINE_ENV)  # any request pip made would go to a closed port...
        if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"]).returncode == 0:
            cmd = ["unshare", "--net", *cmd]  # ...and there is no network to make it on
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)


def fake_root(path: Path) -> Path:
    """A root with a passwd (the desktop user `steward`) and the gate's two databases."""
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                         "steward:x:1000:1000::/home/steward:/bin/bash\n")
    data = path / "var" / "lib" / "gate-scanner"
    data.mkdir(parents=True)
    for name in ("gate.db", "gate-journal.db"):
        with sqlite3.connect(data / name) as db:
            db.execute("CREATE TABLE kept (note TEXT)")
            db.execute("INSERT INTO kept VALUES (?)", (f"{name} before any install",))
        db.close()
    return path


def databases(root: Path) -> dict[str, tuple[bytes, int]]:
    data = root / "var" / "lib" / "gate-scanner"
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(data.iterdir())}


@dataclass
class Installed:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    rollback: subprocess.CompletedProcess[str]
    databases_before: dict[str, tuple[bytes, int]]
    releases: list[str]   # current after the first install, after the second, after rollback
    previous: list[str]   # previous after the second install, after rollback


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An offline bundle for this machine, built by deploy/bundle.sh from the real lock."""
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([str(ROOT / "deploy" / "bundle.sh"), "--arch", platform.machine(),
                           "--out", str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(out.glob("gate-scanner-*.tar.gz"))


@pytest.fixture(scope="module")
def installed(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Two offline installs of the bundle into one fake root, then a rollback."""
    root = fake_root(tmp_path_factory.mktemp("root"))
    before = databases(root)
    link = root / "opt" / "gate-scanner"
    first = install(root, "--bundle", str(bundle), offline=True)
    assert first.returncode == 0, first.stderr[-3000:]
    releases = [os.readlink(link / "current")]
    time.sleep(1.1)  # release ids are to the second
    # The second release is for the links and the rollback; the first is the one run.
    second = install(root, "--bundle", str(bundle), offline=True, byte_compile=False)
    assert second.returncode == 0, second.stderr[-3000:]
    releases.append(os.readlink(link / "current"))
    previous = [os.readlink(link / "previous")]
    rollback = install(root, "--rollback")
    releases.append(os.readlink(link / "current"))
    previous.append(os.readlink(link / "previous"))
    return Installed(root, first, second, rollback, before, releases, previous)


@needs_root
@pytest.mark.slow
def test_the_bundle_installs_with_no_network(installed: Installed) -> None:
    venv = installed.root / "opt" / "gate-scanner" / installed.releases[0] / ".venv"
    answer = subprocess.run([str(venv / "bin" / "gate"), "--version"], capture_output=True,
                            text=True, check=False)
    assert (answer.returncode, answer.stdout.strip()) == (0, f"gate-scanner {version()}")
    imports = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import cv2, zxingcpp, evdev, gpiozero, serial, sqlalchemy"],
                             capture_output=True, text=True, check=False)
    assert imports.returncode == 0, imports.stderr


@needs_root
@pytest.mark.slow
def test_install_without_systemd_enables_the_unit_and_says_it_did_not_start_it(
        installed: Installed) -> None:
    system = installed.root / "etc" / "systemd" / "system"
    wants = system / "multi-user.target.wants" / "gate-scanner.service"
    assert os.readlink(wants) == "/etc/systemd/system/gate-scanner.service"
    assert (system / "gate-scanner.service").read_bytes() == \
        (ROOT / "systemd" / "gate-scanner.service").read_bytes()
    assert "NOT started" in installed.first.stderr
    assert os.readlink(installed.root / "usr" / "local" / "bin" / "gate") == INSTALLED_GATE


@needs_root
@pytest.mark.slow
def test_each_install_is_a_release_of_its_own(installed: Installed) -> None:
    first, second, _ = installed.releases
    assert first != second
    assert first.startswith("releases/0.1.0-") and second.startswith("releases/0.1.0-")
    assert installed.previous[0] == first
    assert (installed.root / "etc" / "gate-scanner" / "gate.toml").is_file()


@needs_root
@pytest.mark.slow
def test_rollback_returns_to_the_previous_release_with_the_databases_untouched(
        installed: Installed) -> None:
    assert installed.rollback.returncode == 0, installed.rollback.stderr
    first, second, after = installed.releases
    assert after == first
    assert installed.previous[1] == second  # a second rollback goes forward again
    assert databases(installed.root) == installed.databases_before


@needs_root
def test_rollback_with_nothing_to_go_back_to_says_so(tmp_path: Path) -> None:
    proc = install(fake_root(tmp_path), "--rollback")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "install.sh: no previous release to roll back to (ls /opt/gate-scanner/releases)"]


# --- the steward's screen -------------------------------------------------------------------

LAUNCHER = "/opt/gate-scanner/current/deploy/kiosk-launch.sh"


def kiosk(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "deploy" / "kiosk.sh"), *args],
                          env={**os.environ, "GATE_INSTALL_ROOT": str(root)},
                          capture_output=True, text=True, timeout=60)


@needs_root
def test_kiosk_starts_from_the_labwc_and_wayfire_autostart(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    (root / "etc" / "xdg" / "labwc").mkdir(parents=True)
    (root / "etc" / "xdg" / "labwc" / "autostart").write_text("/usr/bin/kanshi &\n")
    config = root / "home" / "steward" / ".config"
    config.mkdir(parents=True)
    (config / "wayfire.ini").write_text("[core]\nxwayland = true\n\n[autostart]\n"
                                        "panel = wfrepanel\n")
    for _ in range(2):  # a second run changes nothing
        proc = kiosk(root, "steward")
        assert proc.returncode == 0, proc.stderr
    labwc = (config / "labwc" / "autostart").read_text().splitlines()
    # the system's autostart is kept, so the desktop keeps its display setup
    assert labwc == ["/usr/bin/kanshi &", f"{LAUNCHER} & # gate-scanner kiosk"]
    assert (config / "wayfire.ini").read_text() == (
        f"[core]\nxwayland = true\n\n[autostart]\ngate_kiosk = {LAUNCHER}\npanel = wfrepanel\n")
    assert (config / "labwc" / "autostart").stat().st_uid == 1000

    assert kiosk(root, "--remove", "steward").returncode == 0
    assert LAUNCHER not in (config / "labwc" / "autostart").read_text()
    assert LAUNCHER not in (config / "wayfire.ini").read_text()


@needs_root
def test_kiosk_makes_the_wayfire_autostart_section_when_there_is_none(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    assert kiosk(root, "steward").returncode == 0
    config = root / "home" / "steward" / ".config"
    assert (config / "wayfire.ini").read_text() == f"[autostart]\ngate_kiosk = {LAUNCHER}\n"
    assert (config / "labwc" / "autostart").read_text() == f"{LAUNCHER} & # gate-scanner kiosk\n"


class Health(http.server.BaseHTTPRequestHandler):
    status = 503
    body = b""

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health() -> Iterator[tuple[str, type[Health]]]:
    handler = type("Handler", (Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def launch(tmp_path: Path, url: str) -> tuple[subprocess.Popen[bytes], Path]:
    """The launcher with a browser that notes each start (its arguments) and exits."""
    starts = tmp_path / "starts"
    browser = tmp_path / "browser"  # stands in for Chromium
    browser.write_text(f"#!/bin/sh\necho \"$*\" >> {starts}\n")
    browser.chmod(0o755)
    env = {**os.environ, "GATE_KIOSK_URL": url, "GATE_KIOSK_BROWSER": str(browser),
           "GATE_KIOSK_RESTART_DELAY": "0.2", "XDG_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.Popen([str(ROOT / "deploy" / "kiosk-launch.sh")], env=env,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, starts


@pytest.mark.skipif(shutil.which("curl") is None, reason="the launcher probes with curl")
def test_kiosk_launcher_opens_the_page_on_a_first_sync_but_not_on_a_gate_not_ready(
        tmp_path: Path, health: tuple[str, type[Health]]) -> None:
    """A first sync shows its progress on the page; a gate starting or broken shows none."""
    url, handler = health
    handler.body = b'{"ok":false,"state":"not ready","reasons":["not ready: starting"]}'
    proc, starts = launch(tmp_path, url)
    try:
        time.sleep(2)
        assert not starts.exists()
        handler.body = b'{"ok":false,"state":"syncing","reasons":["syncing: 20 of 300"]}'
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not starts.exists():
            time.sleep(0.1)
        assert starts.exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the launcher probes with curl")
def test_kiosk_launcher_waits_for_healthz_then_keeps_the_browser_running(
        tmp_path: Path, health: tuple[str, type[Health]]) -> None:
    url, handler = health
    proc, starts = launch(tmp_path, url)
    try:
        time.sleep(2)
        assert not starts.exists()  # /healthz says 503: the gate cannot decide yet
        handler.status = 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                not starts.exists() or len(starts.read_text().splitlines()) < 2):
            time.sleep(0.1)
        lines = starts.read_text().splitlines()
        assert len(lines) >= 2  # it exited, and was started again
        assert "--kiosk" in lines[0].split() and f"--app={url}" in lines[0].split()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
