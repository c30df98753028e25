"""What ships to a Raspberry Pi: the scripts parse, the unit passes systemd's own checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["run", ".ci/run", "deploy/bootstrap.sh", "deploy/install.sh", "deploy/kiosk.sh"]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
INSTALLED_GATE = "/opt/gate-scanner/.venv/bin/gate"
MAX_EXPOSURE = 3.0  # issue 9's goal for systemd-analyze security


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
    assert any("--kiosk" in line for line in script.splitlines()[:6])  # in the header
    assert re.search(r"^\s+--kiosk\)", script, re.M)
    assert re.search(r"^\s+deploy/kiosk\.sh\b", script, re.M)


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
