"""``gate journal backup``: a sound copy holding every scan journaled before it began, taken
while another process goes on journaling, written whole or not at all."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.gate import build_gate
from kits.journal import EVENT, journal_path, open_journal

from scanner.app import Gate
from scanner.errors import BackupFailed
from scanner.journal.backup import copy_journal

TESTS = Path(__file__).parent
SEED_SCANS = 3000
WAIT = 30.0

# Another process journaling as the gate does (one fsync'd commit per scan) until told to
# stop; it prints one line once it has committed, and its count at the end.
WRITER = """
import sys
from pathlib import Path
from kits.journal import make_decision, make_ticket, open_journal

path, stop = Path(sys.argv[1]), Path(sys.argv[2])
n = 0
with open_journal(path) as journal:
    while not stop.exists():
        n += 1
        journal.record(make_decision(make_ticket(n)), scan_id=f"writer-{n}",
                       scanned_at="2030-01-01T12:00:00.000Z", latency_ms=1.0)
        if n == 1:
            print("writing", flush=True)
print(n, flush=True)
"""


def seed(path: Path, count: int) -> None:
    """``count`` scans in one transaction (the copy then takes many steps)."""
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO journal (scan_id, gate_id, event_id, barcode, direction, result, "
            "reason, message, scanned_at, offline, upload_state) "
            "VALUES (?, 'g1', ?, ?, 'IN', 'OK', 'GRANTED', 'Welcome', ?, 1, 'pending')",
            [(f"seed-{i}", EVENT, f"BC{i:010d}", "2030-01-01T10:00:00.000Z")
             for i in range(count)])
    conn.close()


def scan_ids(path: Path, up_to: int | None = None) -> set[str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        query, args = "SELECT scan_id FROM journal", ()
        if up_to is not None:
            query, args = query + " WHERE seq <= ?", (up_to,)
        return {row[0] for row in conn.execute(query, args)}
    finally:
        conn.close()


def last_seq(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT max(seq) FROM journal").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    with build_gate(tmp_path) as gate:
        gate.open(Gate.journal)
    path = journal_path(gate.config)
    seed(path, SEED_SCANS)
    return path


@pytest.fixture
def writer(journal_file: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    stop = tmp_path / "stop-writing"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(journal_file), str(stop)],
                            cwd=TESTS, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    yield proc
    stop.touch()
    proc.wait(WAIT)


def integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def test_a_copy_taken_while_another_process_journals_holds_every_scan_before_it(
        journal_file: Path, writer: subprocess.Popen[str], tmp_path: Path) -> None:
    before = last_seq(journal_file)
    expected = scan_ids(journal_file, up_to=before)
    # Two pages a step and a pause between steps: the writer commits while the copy runs.
    copied = copy_journal(journal_file, tmp_path / "copy.db", pages=2, pause=0.002)
    after = last_seq(journal_file)
    assert after > (copied.last_seq or 0) >= before, "the writer committed during the copy"
    assert integrity(copied.path) == ["ok"]
    held = scan_ids(copied.path)
    assert expected <= held
    # One snapshot: exactly the journal's rows up to the copy's last seq, none after.
    assert held == scan_ids(journal_file, up_to=copied.last_seq)
    assert copied.scans == len(held) > SEED_SCANS


def test_the_copy_is_one_file_that_opens_without_a_wal(journal_file: Path,
                                                      tmp_path: Path) -> None:
    copied = copy_journal(journal_file, tmp_path / "copy.db")
    conn = sqlite3.connect(copied.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == \
        ["copy.db"]


def test_the_copy_has_the_journals_file_mode(journal_file: Path, tmp_path: Path) -> None:
    journal_file.chmod(0o600)
    copied = copy_journal(journal_file, tmp_path / "copy.db")
    assert copied.path.stat().st_mode & 0o777 == 0o600


def test_a_copy_that_cannot_be_written_leaves_the_old_one_and_no_partial_file(
        journal_file: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    dest.write_bytes(b"the copy of yesterday")
    # A file that is not a journal fails its copy (as a damaged one would) after the
    # partial file was created.
    bogus = tmp_path / "not-a-journal.db"
    sqlite3.connect(bogus).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(BackupFailed, match="not a gate journal"):
        copy_journal(bogus, dest)
    assert dest.read_bytes() == b"the copy of yesterday"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_copy_onto_a_device_or_pipe_is_refused_and_leaves_it_there(
        journal_file: Path, tmp_path: Path) -> None:
    """The rename used to put the copy in place of what was there: as root, a backup to
    /dev/null replaced /dev/null itself (a pipe stands in for it here)."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(BackupFailed, match=f"^cannot write {pipe}: not a regular file"):
        copy_journal(journal_file, pipe)
    assert stat.S_ISFIFO(pipe.stat().st_mode)


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_copy_onto_the_journals_own_wal_or_shm_is_refused(journal_file: Path,
                                                           suffix: str) -> None:
    beside = journal_file.with_name(journal_file.name + suffix)
    with pytest.raises(BackupFailed, match="is the journal itself"):
        copy_journal(journal_file, beside)
    assert not beside.exists() or beside.stat().st_size < journal_file.stat().st_size


def test_no_journal_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BackupFailed, match=f"no journal at {tmp_path / 'none.db'}"):
        copy_journal(tmp_path / "none.db", tmp_path / "copy.db")


# -- the command ---------------------------------------------------------------------------


def gate_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    environ.update({"GATE_DB": str(tmp_path / "gate.db"), "GATE_ID": "g1", **env})
    return subprocess.run([sys.executable, "-m", "scanner.cli.main", *args], env=environ,
                          capture_output=True, text=True, timeout=WAIT)


def test_gate_journal_backup_into_a_folder_while_another_process_journals(
        journal_file: Path, writer: subprocess.Popen[str], tmp_path: Path) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    before = last_seq(journal_file)
    expected = scan_ids(journal_file, up_to=before)
    started = time.monotonic()
    done = gate_cli(tmp_path, "journal", "backup", str(folder))
    assert done.returncode == 0, done.stderr
    [copy] = list(folder.iterdir())
    assert copy.name.startswith("g1-journal-") and copy.suffix == ".db"
    assert done.stdout.startswith(f"{copy}: ") and done.stdout.rstrip().endswith("verified")
    assert integrity(copy) == ["ok"] and expected <= scan_ids(copy)
    assert time.monotonic() - started < WAIT


def test_gate_journal_backup_onto_the_ticket_store_is_refused(journal_file: Path,
                                                             tmp_path: Path) -> None:
    """It used to replace the live store with the journal's copy."""
    store = tmp_path / "gate.db"
    before = store.read_bytes()
    done = gate_cli(tmp_path, "journal", "backup", str(store))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"gate: error: {store} is the ticket store, not a place for the journal's copy"]
    assert store.read_bytes() == before


def test_a_journal_on_a_database_server_is_backed_up_by_the_server(tmp_path: Path) -> None:
    done = gate_cli(tmp_path, "journal", "backup", str(tmp_path / "copy.db"),
                    GATE_JOURNAL_DB="postgresql+psycopg://gate@127.0.0.1:9/gate")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: the journal is on a postgresql server: back it up with the server's own "
        "tools (pg_dump, say)"]
    assert not (tmp_path / "copy.db").exists()


def test_backing_up_onto_the_journal_itself_is_refused(journal_file: Path) -> None:
    with pytest.raises(BackupFailed, match="is the journal itself"):
        copy_journal(journal_file, journal_file)
    with open_journal(journal_file) as journal:
        assert sum(1 for _ in journal.entries()) == SEED_SCANS


# -- a journal on a disk the kernel remounted read-only ------------------------------------

# In a mount namespace of its own: the journal (and its WAL, if one is given) on a tmpfs
# remounted read-only, copied to a writable folder; prints what the copy said.
READ_ONLY_CHILD = """
import sys
from pathlib import Path
from scanner.errors import BackupFailed
from scanner.journal.backup import copy_journal

try:
    print(copy_journal(Path(sys.argv[1]), Path(sys.argv[2])).scans)
except BackupFailed as exc:
    print(exc)
"""


def copy_from_read_only_disk(tmp_path: Path, *files: Path) -> str:
    disk, dest = tmp_path / "sd", tmp_path / "copy.db"
    disk.mkdir()
    copies = " && ".join(f'cp "{f}" "{disk}/"' for f in files)
    script = (f'mount -t tmpfs -o size=64m gate-sd "{disk}" && {copies} && '
              f'mount -o remount,ro "{disk}" && '
              f'exec "{sys.executable}" -c "$CHILD" "{disk / files[0].name}" "{dest}"')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          env={**os.environ, "CHILD": READ_ONLY_CHILD,
                               "PYTHONPATH": str(TESTS.parent)},
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and ("unshare:" in done.stderr or "mount:" in done.stderr):
        pytest.skip("no mount namespace here (unshare -m and mount need CAP_SYS_ADMIN)")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_journal_on_a_read_only_disk_is_copied_whole(journal_file: Path,
                                                       tmp_path: Path) -> None:
    """SQLite cannot make the -shm a WAL reader needs there: the copy used to fail, saying
    the journal was "not a gate journal", just when it had to be taken off the card."""
    assert copy_from_read_only_disk(tmp_path, journal_file) == str(SEED_SCANS)
    assert scan_ids(tmp_path / "copy.db") == scan_ids(journal_file)


def test_a_read_only_journal_whose_wal_holds_scans_is_refused_with_what_to_do(
        journal_file: Path, tmp_path: Path) -> None:
    """Read as immutable, its WAL would be ignored and the copy would lack those scans."""
    conn = sqlite3.connect(journal_file)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO journal (scan_id, gate_id, event_id, barcode, direction, "
                 "result, reason, message, scanned_at, offline, upload_state) VALUES "
                 "('in-wal', 'g1', ?, 'BC', 'IN', 'OK', 'GRANTED', 'Welcome', "
                 "'2030-01-01T10:00:00.000Z', 1, 'pending')", (EVENT,))
    conn.commit()
    wal = journal_file.with_name(journal_file.name + "-wal")
    try:
        said = copy_from_read_only_disk(tmp_path, journal_file, wal)
    finally:
        conn.close()
    assert "is on a read-only disk with scans still in" in said
    assert "back up that copy" in said
    assert not (tmp_path / "copy.db").exists()
