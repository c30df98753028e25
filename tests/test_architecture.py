"""The layering STYLE.md asks for, checked on what modules really import."""

from __future__ import annotations

import ast
import dataclasses
import re
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


# Every setting naming a secret file, and the module that reads it through scanner.secret_file.
SECRET_SETTINGS = {"api.token_file": "scanner/config/load.py",
                   "mesh.key_file": "scanner/mesh/message.py",
                   "mesh.credentials_file": "scanner/mesh/settings.py",
                   "mesh.client_key_file": "scanner/mesh/settings.py",
                   "web.pin_file": "scanner/kiosk/auth.py",
                   "web.supervisor_pin_file": "scanner/kiosk/auth.py"}
PUBLIC_FILES = {"mesh.ca_file", "mesh.cert_file"}  # certificates: nothing to hide


def test_file_modes_are_judged_in_one_module() -> None:
    # What judges a mode: the group and other bits by name or as a mask (copying a mode
    # from one file to another judges nothing).
    mode_words = re.compile(r"S_IRWX[GO]|S_I[RWX](?:GRP|OTH)|0o0?77\b")
    judges = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scanner").rglob("*.py")
                    if mode_words.search(p.read_text(encoding="utf-8")))
    assert judges == ["scanner/secret_file.py"]


def test_every_secret_file_setting_is_read_through_the_secret_file_module() -> None:
    from scanner.config import GateConfig

    config = GateConfig()
    file_settings = {f"{section.name}.{f.name}" for section in dataclasses.fields(config)
                     if dataclasses.is_dataclass(table := getattr(config, section.name))
                     for f in dataclasses.fields(table) if f.name.endswith("_file")}
    assert file_settings == set(SECRET_SETTINGS) | PUBLIC_FILES
    for setting, module in SECRET_SETTINGS.items():
        text = (ROOT / module).read_text(encoding="utf-8")
        assert "from scanner.secret_file import" in text and f'"{setting}"' in text, setting


def test_the_secret_file_reader_sits_below_every_adapter() -> None:
    assert imported_after("import scanner.secret_file") <= {"scanner"}


def test_the_mesh_url_override_is_read_in_one_place() -> None:
    readers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scanner").rglob("*.py")
                     if '"GATE_MESH_URL"' in p.read_text(encoding="utf-8"))
    assert readers == ["scanner/config/load.py"]


def scanner_imports(path: Path) -> set[str]:
    """Every module an ``import`` statement in ``path`` names, at any depth (function-local
    and ``TYPE_CHECKING`` ones too), relative imports resolved; ``from a import b`` counts
    ``a.b`` as well, since ``b`` may be a module."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


# What the configuration may import of the scanner: the errors, the secret-file reader, the
# network rules, and its own modules. Beside those, only the standard library.
CONFIG_MAY_IMPORT = ("scanner.errors", "scanner.secret_file", "scanner.netrules",
                     "scanner.config")


def foreign_imports(path: Path, allowed: tuple[str, ...]) -> list[str]:
    """What ``path`` imports beyond the standard library and the ``allowed`` modules."""
    def inside(name: str) -> bool:
        return any(name == m or name.startswith(f"{m}.") for m in allowed)

    return sorted(name for name in scanner_imports(path) if not inside(name)
                  and name.partition(".")[0] not in sys.stdlib_module_names)


def test_the_configuration_imports_no_adapter() -> None:
    """scanner.config is the bottom layer: nothing of the scanner but the modules below it,
    no hardware, no third-party library (httpx, sqlalchemy, paho, cv2 ...)."""
    modules = sorted((ROOT / "scanner" / "config").rglob("*.py"))
    assert len(modules) > 1, "scanner/config/ is a package"
    for path in modules:
        assert foreign_imports(path, CONFIG_MAY_IMPORT) == [], path.name


@pytest.mark.parametrize("module", ["secret_file", "netrules"])
def test_the_modules_below_the_configuration_import_only_errors(module: str) -> None:
    assert foreign_imports(ROOT / "scanner" / f"{module}.py", ("scanner.errors",)) == []


def test_paho_is_imported_by_the_mesh_broker_adapter_alone() -> None:
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scanner").rglob("*.py")
                       if re.search(r"^\s*(?:import|from) paho\b", p.read_text(encoding="utf-8"),
                                    re.MULTILINE))
    assert importers == ["scanner/mesh/paho_broker.py"]
    assert "paho" not in imported_after("import scanner.mesh.link, scanner.mesh.memory_broker")
