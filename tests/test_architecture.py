"""The layering STYLE.md asks for, checked on what modules really import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARDWARE = sorted(p.stem for p in (ROOT / "hardware").glob("*.py") if p.stem != "__init__")


def imported_after(statement: str) -> set[str]:
    code = f"import sys; before = set(sys.modules); {statement}; " \
           "print(' '.join(sorted(set(sys.modules) - before)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", HARDWARE)
def test_hardware_never_imports_scanner(module: str) -> None:
    assert "scanner" not in imported_after(f"import hardware.{module}")


def test_the_decision_path_imports_no_io_library() -> None:
    loaded = imported_after("import scanner.decide.rules, scanner.decide.policy")
    assert not loaded & {"sqlalchemy", "httpx", "cv2", "serial", "evdev", "gpiozero", "socket"}


@pytest.mark.parametrize("module", ["scanner.gatekeeper", "scanner.sync.syncer",
                                    "scanner.upload.outbox", "hardware.serial_reader"])
def test_heavy_device_libraries_load_only_in_their_adapters(module: str) -> None:
    assert not imported_after(f"import {module}") & {"cv2", "zxingcpp", "pyzbar", "evdev"}
