"""The layering STYLE.md asks for, checked on what modules really import."""

from __future__ import annotations

import ast
import dataclasses
import functools
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


@pytest.mark.slow
@pytest.mark.parametrize("module", ["scanner.gatekeeper", "scanner.sync.syncer",
                                    "scanner.upload.outbox", "hardware.serial_reader"])
def test_heavy_device_libraries_load_only_in_their_adapters(module: str) -> None:
    assert not imported_after(f"import {module}") & {"cv2", "zxingcpp", "pyzbar", "evdev"}


def test_gate_run_without_its_page_never_imports_the_web_server() -> None:
    assert not imported_after("import scanner.app.daemon") & {"starlette", "uvicorn"}


# Every setting naming a secret file, and the module that reads it through scanner.secret_file.
SECRET_SETTINGS = {"api.token_file": "scanner/config/load.py",
                   "mesh.key_file": "scanner/mesh/message.py",
                   "mesh.credentials_file": "scanner/mesh/broker_settings.py",
                   "mesh.client_key_file": "scanner/mesh/broker_settings.py",
                   "web.pin_file": "scanner/kiosk/auth.py",
                   "web.supervisor_pin_file": "scanner/kiosk/auth.py",
                   "control.supervisor_key_file": "scanner/app/control.py",
                   "control.credentials_file": "scanner/app/control.py"}
# Where the module naming a setting is not the one that reads it: the reader it hands the
# path and the setting's name to (the name then appears in the reader's errors).
READ_BY = {"control.supervisor_key_file": "scanner/venue/signing.py",
           "control.credentials_file": "scanner/mesh/broker_settings.py"}
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
        assert f'"{setting}"' in (ROOT / module).read_text(encoding="utf-8"), setting
        reader = (ROOT / READ_BY.get(setting, module)).read_text(encoding="utf-8")
        assert "from scanner.secret_file import" in reader, setting


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
                     "scanner.printable", "scanner.config")


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


@pytest.mark.parametrize("module", ["secret_file", "netrules", "printable"])
def test_the_modules_below_the_configuration_import_only_errors(module: str) -> None:
    assert foreign_imports(ROOT / "scanner" / f"{module}.py", ("scanner.errors",)) == []


def test_paho_is_imported_by_the_mesh_broker_adapter_alone() -> None:
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scanner").rglob("*.py")
                       if re.search(r"^\s*(?:import|from) paho\b", p.read_text(encoding="utf-8"),
                                    re.MULTILINE))
    assert importers == ["scanner/mesh/paho_broker.py"]
    assert "paho" not in imported_after("import scanner.mesh.link, scanner.mesh.memory_broker")


# -- the import graph: every import statement of every scanner module ------------------------
# Parsed, not imported: TYPE_CHECKING blocks and imports inside functions count as much as
# the ones at the top, because each is a dependency someone has to keep in their head.

SCANNER = ROOT / "scanner"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(path): path for path in SCANNER.rglob("*.py")}


def _nearest_module(name: str) -> str | None:
    """The scanner module ``name`` is or lies in (``scanner.app.Gate`` is in scanner.app)."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per dot after the first
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from scanner.x import y`` imports module scanner.x.y when there is one
            named.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for name in named if name.split(".")[0] == "scanner"
            if (target := _nearest_module(name)) is not None and target != module}


@functools.cache
def graph() -> dict[str, set[str]]:
    """Each scanner module's scanner imports, parsed when a test first asks (not at
    collection, which every worker of a parallel run repeats)."""
    return {module: _imports(module) for module in MODULES}


def package_of(module: str) -> str:
    """``scanner.x.y`` is in package x; a top-level ``scanner/foo.py`` is a package of its own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Every strongly connected set of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.add(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        found.add(frozenset(members))
    return found


def _package_pairs() -> set[frozenset[str]]:
    edges = {(package_of(a), package_of(b)) for a, targets in graph().items() for b in targets}
    return {frozenset((a, b)) for a, b in edges if a != b and (b, a) in edges}


# No module imports itself back, and no two packages import each other: configuration and
# pure rules at the bottom, adapters above them, the builders on top.
KNOWN_CIRCLES: set[frozenset[str]] = set()


def test_the_graph_sees_every_kind_of_import() -> None:
    """TYPE_CHECKING, function-local and relative imports are all counted."""
    assert "scanner.app.daemon" in graph()["scanner.cli.run_cmd"]    # inside a function
    assert "scanner.store.tickets" in graph()["scanner.app.gate"]    # TYPE_CHECKING
    assert "scanner.kiosk.server" in graph()["scanner.kiosk"]        # from an __init__


def test_only_the_builders_the_commands_and_the_benchmarks_import_the_app() -> None:
    importers = {package_of(module) for module, targets in graph().items()
                 if any(package_of(target) == "app" for target in targets)}
    assert importers <= {"app", "cli", "bench"}
    assert "cli" in importers


def test_no_import_circle_among_modules_but_the_known() -> None:
    circles = _circles(graph())
    assert circles == {c for c in KNOWN_CIRCLES if all("." in m for m in c)}


def test_no_two_packages_import_each_other_but_the_known() -> None:
    assert _package_pairs() == {c for c in KNOWN_CIRCLES if not any("." in m for m in c)}


def test_the_builders_are_in_no_circle() -> None:
    in_app = {m for m in MODULES if package_of(m) == "app"}
    assert not any(c & in_app for c in _circles(graph()))
    assert not any("app" in pair for pair in _package_pairs())
