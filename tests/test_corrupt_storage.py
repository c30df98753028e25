"""Broken storage through the real CLI: real SQLite files with real bytes overwritten in a
page, or JSON columns holding garbage. Every command answers in one line naming the file
(an uncaught exception would fail the test, since ``main`` runs in-process); ``gate db
check`` finds each; ``gate db rebuild-store`` keeps every journal row; a journal that is
missing, foreign or damaged is refused and never replaced."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.gate import write_toml
from kits.sim import SIM_TOKEN

from scanner.cli.main import main
from scanner.sim import SimServer, World

STORE_TABLES = ("events", "sync_state", "device_settings", "tickets")
PAGE_GARBAGE = bytes(range(256)) * 16  # one 4 KiB page of bytes no b-tree page has


# The synced store below is built once per module and copied per test: on one worker, once.
pytestmark = pytest.mark.xdist_group("corrupt-storage")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=5, events=1, tickets_per_event=800)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[SimServer]:
    with SimServer(world, token=SIM_TOKEN) as sim:
        yield sim


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, server: SimServer,
          world: World) -> Path:
    """A synced store and a journal with two scans, built once and copied per test."""
    folder = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as patch:
        _environment(patch, server, folder)
        assert main(["sync", "--once"]) == 0
        for barcode in _barcodes(world)[:2]:
            assert main(["check", barcode]) == 0
    for db in (folder / "gate.db", folder / "gate-journal.db"):
        with sqlite3.connect(db) as conn:  # everything in the main file, none in the WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return folder


@pytest.fixture
def gate_dir(built: Path, tmp_path: Path, server: SimServer,
             monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "gate"
    shutil.copytree(built, folder)
    _environment(monkeypatch, server, folder)
    return folder


def _environment(patch: pytest.MonkeyPatch, server: SimServer, folder: Path) -> None:
    for name in ("GATE_CONFIG", "GATE_JOURNAL_DB", "GATE_EVENTS", "GATE_ID",
                 "GATE_API_TOKEN_FILE"):
        patch.delenv(name, raising=False)
    patch.setenv("GATE_DB", str(folder / "gate.db"))
    patch.setenv("GATE_API_URL", server.url)
    patch.setenv("GATE_API_TOKEN", SIM_TOKEN)


def _barcodes(world: World) -> list[str]:
    return sorted(t["barcode"] for t in world.current_tickets(world.event_ids[0]))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def corrupt_page(db: Path, table: str) -> None:
    """Overwrite the root page of ``table`` in the file with garbage."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                            (table,)).fetchone()[0]
    assert root > 1 and page_size == len(PAGE_GARBAGE)
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(PAGE_GARBAGE)


def error_lines(err: str) -> list[str]:
    """The lines a user is shown for a fault (``gate upload`` reports its own ``error:``)."""
    return [line for line in err.splitlines() if line.startswith(("gate: error:", "error:"))]


def assert_one_line_naming(err: str, path: Path, *words: str) -> None:
    [line] = error_lines(err)
    assert str(path) in line
    for word in words:
        assert word in line


# -- every command: one line naming the file ---------------------------------------------

@pytest.mark.parametrize("table", STORE_TABLES)
@pytest.mark.parametrize("command", ["status", "check", "journal", "upload", "sync"])
def test_a_damaged_store_page_never_ends_a_command_in_a_traceback(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str], table: str,
        command: str) -> None:
    """Each command either works (it did not need the page) or fails in one line that
    names the store file and says it is damaged."""
    corrupt_page(gate_dir / "gate.db", table)
    args = {"check": ["check", _barcodes(world)[5]], "upload": ["upload", "--once"],
            "sync": ["sync", "--once"]}.get(command, [command])
    code, _out, err = run(capsys, *args)
    if code != 0 and not (command == "check" and not error_lines(err)):
        assert_one_line_naming(err, gate_dir / "gate.db", "ticket store", "damaged")


@pytest.mark.parametrize(("table", "command"), [("events", "status"),
                                                ("sync_state", "status"),
                                                ("device_settings", "check"),
                                                ("tickets", "check")])
def test_the_commands_that_read_a_damaged_table_say_so(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str], table: str,
        command: str) -> None:
    corrupt_page(gate_dir / "gate.db", table)
    args = ["check", _barcodes(world)[5]] if command == "check" else [command]
    code, out, err = run(capsys, *args)
    assert code == 1 and out == ""
    assert_one_line_naming(err, gate_dir / "gate.db", "ticket store", "damaged",
                           "gate db rebuild-store")


def test_a_damaged_tickets_page_is_shown_by_status_once_found(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Counting uses an index, so status alone would not see it; once any command found
    it, every status says so."""
    corrupt_page(gate_dir / "gate.db", "tickets")
    run(capsys, "check", _barcodes(world)[5])
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "STORE DAMAGED" in out and "gate db rebuild-store" in out


@pytest.mark.parametrize(("sql", "command"), [
    ("UPDATE device_settings SET value = '{not json'", "check"),
    ("UPDATE sync_state SET full_anchor = 'garbage['", "status"),
    ("UPDATE tickets SET entry = '[1,'", "check"),
])
def test_garbage_in_a_json_column_is_one_line(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str], sql: str,
        command: str) -> None:
    with sqlite3.connect(gate_dir / "gate.db") as conn:
        conn.execute(sql)
    args = ["check", _barcodes(world)[5]] if command == "check" else [command]
    code, _, err = run(capsys, *args)
    assert code == 1
    assert_one_line_naming(err, gate_dir / "gate.db", "not JSON")


# -- gate db check ------------------------------------------------------------------------

def test_db_check_passes_sound_databases(gate_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "db", "check")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.split(": ", 1)[1].startswith("ok") for line in lines)


@pytest.mark.parametrize("table", STORE_TABLES)
def test_db_check_finds_a_damaged_store_page(gate_dir: Path, capsys: pytest.CaptureFixture[str],
                                             table: str) -> None:
    corrupt_page(gate_dir / "gate.db", table)
    code, out, _ = run(capsys, "db", "check")
    store_line, journal_line = out.splitlines()
    assert code == 1
    assert store_line.startswith(f"ticket store {gate_dir / 'gate.db'}: DAMAGED")
    assert ": ok" in journal_line


def test_db_check_finds_a_damaged_journal_page(gate_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    corrupt_page(gate_dir / "gate-journal.db", "journal")
    code, out, _ = run(capsys, "db", "check", "--json")
    import json

    store, journal = (json.loads(line) for line in out.splitlines())
    assert code == 1
    assert (store["ok"], journal["ok"]) == (True, False)
    assert journal["name"] == str(gate_dir / "gate-journal.db")


def test_db_check_finds_garbage_json(gate_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(gate_dir / "gate.db") as conn:
        conn.execute("UPDATE device_settings SET value = 'nope' WHERE rowid = "
                     "(SELECT min(rowid) FROM device_settings)")
    code, out, _ = run(capsys, "db", "check")
    assert code == 1
    assert "device_settings.value: 1 row(s) not JSON" in out.splitlines()[0]


# -- rebuilding the store -----------------------------------------------------------------

def _journal_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM journal ORDER BY seq").fetchall()


def test_rebuild_store_keeps_every_journal_row_and_refills_the_store(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    before = _journal_rows(gate_dir / "gate-journal.db")
    corrupt_page(gate_dir / "gate.db", "tickets")
    code, out, err = run(capsys, "db", "rebuild-store")
    assert code == 0, err
    assert _journal_rows(gate_dir / "gate-journal.db") == before
    assert len(before) == 2
    assert [p.name for p in gate_dir.glob("gate.db.corrupt-*")]  # the evidence is kept
    with sqlite3.connect(gate_dir / "gate.db") as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone()[0] == 800
    assert f"{800} ticket(s) stored" in out
    assert run(capsys, "db", "check")[0] == 0
    # The rebuilt store knows the journal it kept: presence carries on.
    code, out, _ = run(capsys, "check", _barcodes(world)[0])
    assert (code, out.split(":")[0]) == (1, "ALREADY_INSIDE")


def test_rebuild_store_without_a_server_says_the_store_is_empty(
        gate_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_API_URL", "http://127.0.0.1:9")
    config = write_toml(gate_dir / "gate.toml", {"api": {"retries": 0, "connect_timeout": 0.5}})
    monkeypatch.setenv("GATE_CONFIG", str(config))
    before = _journal_rows(gate_dir / "gate-journal.db")
    code, out, err = run(capsys, "db", "rebuild-store")
    assert code == 1
    assert "created an empty ticket store" in out and "gate sync --once" in err
    assert _journal_rows(gate_dir / "gate-journal.db") == before


# -- the journal is never silently replaced -----------------------------------------------

def test_a_vanished_journal_is_refused_and_not_recreated(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    journal = gate_dir / "gate-journal.db"
    journal.unlink()
    code, _, err = run(capsys, "check", _barcodes(world)[0])
    assert code == 1
    assert_one_line_naming(err, journal, "missing", "gate db new-journal")
    assert not journal.exists()


def test_new_journal_starts_an_empty_one_on_purpose(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    (gate_dir / "gate-journal.db").unlink()
    assert run(capsys, "db", "new-journal")[0] == 0
    code, out, _ = run(capsys, "check", _barcodes(world)[0])
    assert (code, out.split(":")[0]) == (0, "GRANTED")  # a new journal: nobody inside


def test_another_gates_journal_is_refused(gate_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("GATE_DB", str(other / "gate.db"))
    assert run(capsys, "status")[0] == 0  # creates another store and its journal
    monkeypatch.setenv("GATE_DB", str(gate_dir / "gate.db"))
    monkeypatch.setenv("GATE_JOURNAL_DB", str(other / "gate-journal.db"))
    code, _, err = run(capsys, "status")
    assert code == 1
    assert_one_line_naming(err, other / "gate-journal.db", "not journal", "gate db new-journal")


@pytest.mark.parametrize("command", ["status", "journal", "check"])
def test_a_journal_path_that_is_a_folder_is_one_line(
        gate_dir: Path, tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """SQLite cannot open a folder: said in one line naming it, not an OperationalError
    traceback from the first look at which journal it is."""
    folder = tmp_path / "journals"
    folder.mkdir()
    monkeypatch.setenv("GATE_JOURNAL_DB", str(folder))
    args = ["check", _barcodes(world)[0]] if command == "check" else [command]
    code, _, err = run(capsys, *args)
    assert code == 1
    assert_one_line_naming(err, folder, "cannot prepare database", "unable to open")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["status", "journal", "upload"])
def test_a_damaged_journal_is_refused_and_left_as_it_is(
        gate_dir: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    """Refused in one line with the way to recover it, and never replaced: the damaged page
    is still there for ``.recover`` (another page may take a write meanwhile)."""
    journal = gate_dir / "gate-journal.db"
    size = journal.stat().st_size
    corrupt_page(journal, "journal")
    args = ["upload", "--once"] if command == "upload" else [command]
    code, _, err = run(capsys, *args)
    assert code == 1
    assert_one_line_naming(err, journal, "journal", "damaged", f"sqlite3 {journal} .recover")
    assert journal.stat().st_size >= size
    assert PAGE_GARBAGE in journal.read_bytes()


@pytest.mark.parametrize(("db", "table", "kind"), [("gate.db", "meta", "ticket store"),
                                                   ("gate-journal.db", "journal_meta",
                                                    "journal")])
@pytest.mark.parametrize("command", ["status", "check", "journal"])
@pytest.mark.parametrize("garbage", ["x1", "-5"])  # no step leads from -5: a KeyError once
def test_a_schema_version_that_is_not_a_number_is_one_line(
        gate_dir: Path, world: World, capsys: pytest.CaptureFixture[str], db: str, table: str,
        kind: str, command: str, garbage: str) -> None:
    with sqlite3.connect(gate_dir / db) as conn:
        conn.execute(f"UPDATE {table} SET value = ? WHERE key = 'schema_version'", (garbage,))
    args = ["check", _barcodes(world)[5]] if command == "check" else [command]
    code, _, err = run(capsys, *args)
    assert code == 1
    assert_one_line_naming(err, gate_dir / db, kind, "damaged", "schema_version")


def test_db_check_finds_a_schema_version_that_is_not_a_number(
        gate_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(gate_dir / "gate-journal.db") as conn:
        conn.execute("UPDATE journal_meta SET value = 'x1' WHERE key = 'schema_version'")
    code, out, err = run(capsys, "db", "check")
    assert code == 1 and err == ""
    journal_line = next(line for line in out.splitlines() if line.startswith("journal "))
    assert str(gate_dir / "gate-journal.db") in journal_line
    assert "DAMAGED: schema version unreadable" in journal_line


@pytest.mark.parametrize(("db", "table", "kind"), [("gate.db", "meta", "ticket store"),
                                                   ("gate-journal.db", "journal_meta",
                                                    "journal")])
def test_db_check_says_a_schema_newer_than_the_software(
        gate_dir: Path, capsys: pytest.CaptureFixture[str], db: str, table: str,
        kind: str) -> None:
    """Every other command refuses such a database; db check called it plain "ok"."""
    with sqlite3.connect(gate_dir / db) as conn:
        conn.execute(f"UPDATE {table} SET value = '999' WHERE key = 'schema_version'")
    code, out, _ = run(capsys, "db", "check")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith(f"{kind} "))
    assert str(gate_dir / db) in line
    assert "schema 999 is newer than this gate-scanner" in line and "upgrade" in line


def _damage_a_middle_journal_leaf(journal: Path) -> None:
    """Grow the journal to many leaf pages, then garble one in the middle of the table
    (not its root: the first rows still read, the damage is met midway)."""
    with sqlite3.connect(journal) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(journal)")
                   if row[1] not in ("seq", "scan_id")]
        listed = ", ".join(columns)
        for n in range(3000):
            conn.execute(f"INSERT INTO journal (scan_id, {listed}) SELECT scan_id || '-{n}',"
                         f" {listed} FROM journal WHERE seq = 1")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [row[0] for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'journal' AND pagetype = 'leaf'"
            " ORDER BY pageno")]
    assert len(pages) > 20
    with journal.open("r+b") as f:
        f.seek((pages[len(pages) // 2] - 1) * page_size)
        f.write(PAGE_GARBAGE)


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--csv"]])
def test_an_audit_that_meets_a_damaged_journal_page_midway_fails_in_one_line(
        gate_dir: Path, capsys: pytest.CaptureFixture[str], fmt: list[str]) -> None:
    """The rows before the damage are printed, then one line says the audit is cut short:
    an exit 0 would pass a partial audit off as the whole journal."""
    journal = gate_dir / "gate-journal.db"
    _damage_a_middle_journal_leaf(journal)
    code, out, err = run(capsys, "journal", *fmt)
    assert code == 1
    assert out.count("\n") > 100
    assert_one_line_naming(err, journal, "journal", "damaged")
