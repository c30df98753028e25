"""The daemon's daily journal copy: once a day at ``backup_at``, exactly ``backup_keep``
kept, and each way the folder can fail is one WARNING line that never stops the gate.

The read-only and full sticks are real file systems: a tmpfs mounted read-only or small in
a mount namespace of the test's own (``unshare -m``), skipped where that is not allowed.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import sleep
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kits.gate import build_gate, gate_toml, write_toml
from kits.gpio import RELAY
from kits.journal import api_config, journal_path
from kits.waiting import wait_for
from test_daemon import TYPED_DEVICE, TypedSource

from scanner.app import Gate
from scanner.app.daemon import start_daemon
from scanner.clock import utc_now
from scanner.config import LookupConfig, ReaderConfig, load_config
from scanner.errors import ConfigError
from scanner.journal.backup_dir import BackupPlan, DailyBackup, backups, prefix

TESTS = Path(__file__).parent
BERLIN = ZoneInfo("Europe/Berlin")
AT = time(3, 30)
START = datetime(2030, 1, 1, 1, 0, tzinfo=UTC)  # 02:00 in Berlin, before the day's copy


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    with build_gate(tmp_path) as gate:
        gate.open(Gate.journal)
    return journal_path(gate.config)


def daily(journal: Path, folder: Path, clock: Clock, *, keep: int = 3,
          same_disk: bool = True) -> DailyBackup:
    return DailyBackup(journal, "g1", BackupPlan(folder, keep, AT, same_disk), clock=clock,
                       zone=BERLIN)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "scanner.journal" and r.levelno == logging.WARNING]


def test_a_gate_without_a_copy_makes_one_at_once_then_one_a_day_at_backup_at(
        journal_file: Path, tmp_path: Path) -> None:
    folder, clock = tmp_path / "stick", Clock(START)
    folder.mkdir()
    job = daily(journal_file, folder, clock)
    assert job() and len(backups(folder, "g1")) == 1  # yesterday's 03:30 was missed
    for minutes in range(1, 90, 7):  # until 03:28 Berlin: nothing new is due
        clock.now = START + timedelta(minutes=minutes)
        assert job()
    assert len(backups(folder, "g1")) == 1
    clock.now = datetime(2030, 1, 1, 2, 31, tzinfo=UTC)  # 03:31 Berlin
    assert job()
    stamps = [stamp for stamp, _ in backups(folder, "g1")]
    assert stamps[-1] == clock.now and len(stamps) == 2
    clock.now += timedelta(hours=5)
    assert job() and len(backups(folder, "g1")) == 2


def test_a_restarted_gate_finds_the_days_copy_on_the_stick(journal_file: Path,
                                                          tmp_path: Path) -> None:
    folder, clock = tmp_path / "stick", Clock(START)
    folder.mkdir()
    daily(journal_file, folder, clock)()
    clock.now += timedelta(minutes=20)
    assert daily(journal_file, folder, clock)()  # a new process: the file says it is done
    assert len(backups(folder, "g1")) == 1


def test_retention_keeps_exactly_backup_keep_copies_the_newest(journal_file: Path,
                                                              tmp_path: Path) -> None:
    folder, clock = tmp_path / "stick", Clock(START)
    folder.mkdir()
    others = [folder / "g2-journal-20200101T000000Z.db", folder / "holiday.jpg",
              folder / "g1-journal-notes.txt"]
    for other in others:
        other.write_text("not ours")
    job = daily(journal_file, folder, clock, keep=3)
    made = []
    for day in range(7):
        clock.now = datetime(2030, 1, 1, 2, 45, tzinfo=UTC) + timedelta(days=day)
        assert job()
        made.append(clock.now)
    assert [stamp for stamp, _ in backups(folder, "g1")] == made[-3:]
    assert all(other.read_text() == "not ours" for other in others)


def test_a_copy_cut_off_half_written_is_cleared_at_the_next_copy(journal_file: Path,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    leftover = folder / f".{prefix('g1')}20291231T023000Z.db.partial"
    leftover.write_bytes(b"half a copy")
    assert daily(journal_file, folder, Clock(START))()
    assert not leftover.exists()


def test_a_missing_stick_is_one_warning_and_no_file(journal_file: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    folder, clock = tmp_path / "stick", Clock(START)
    job = daily(journal_file, folder, clock)
    results = []
    for minutes in range(5):
        clock.now = START + timedelta(minutes=minutes)
        results.append(job())
    assert results == [False] * 5
    assert warnings(caplog) == [f"journal backup skipped: {folder} is missing (is the "
                                f"stick plugged in?)"]
    folder.mkdir()  # plugged in: the next look makes the copy
    assert job() and len(backups(folder, "g1")) == 1


def test_an_unmounted_stick_is_one_warning_and_nothing_written_to_the_journals_disk(
        journal_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mount_point = tmp_path / "stick"  # a plain folder where the stick would be mounted
    mount_point.mkdir()
    job = daily(journal_file, mount_point, Clock(START), same_disk=False)
    assert [job(), job(), job()] == [False, False, False]
    [line] = warnings(caplog)
    assert line.startswith(f"journal backup skipped: {mount_point} is on the journal's own "
                           f"disk (is the stick mounted?")
    assert list(mount_point.iterdir()) == []


def test_a_copy_that_fails_is_one_warning_and_is_not_retried_every_minute(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    damaged = tmp_path / "gate-journal.db"
    damaged.write_bytes(b"this is not a database" * 512)
    folder, clock = tmp_path / "stick", Clock(START)
    folder.mkdir()
    job = daily(damaged, folder, clock)
    for minutes in range(0, 50, 10):
        clock.now = START + timedelta(minutes=minutes)
        assert not job()
    [line] = warnings(caplog)
    assert line.startswith(f"journal backup skipped: cannot copy the journal to {folder}/")
    assert list(folder.iterdir()) == []


def test_the_gate_schedules_the_backup_only_with_a_backup_dir(tmp_path: Path) -> None:
    toml = gate_toml(tmp_path, journal={"backup_dir": "/media/stick", "backup_keep": 14,
                                        "backup_at": "02:15"})
    config = load_config(toml, env={})
    assert (config.journal.backup_dir, config.journal.backup_keep,
            config.journal.backup_at) == ("/media/stick", 14, "02:15")
    server = load_config(toml, env={"GATE_JOURNAL_DB": "postgresql+psycopg://gate@x/gate"})
    with Gate(server) as gate, pytest.raises(ConfigError, match=r"journal\.backup_dir: the "
                                                               "journal has no file to copy"):
        gate.scheduler  # noqa: B018 (building it is the test)


@pytest.mark.parametrize("value", ["3:3", "25:00", "noon", "03:30:00"])
def test_backup_at_must_be_a_time_of_day(tmp_path: Path, value: str) -> None:
    toml = write_toml(tmp_path / "gate.toml", {"journal": {"backup_at": value}})
    with pytest.raises(ConfigError, match=re.escape(f"journal.backup_at: expected a local "
                                                    f"time of day as HH:MM, got '{value}'")):
        load_config(toml, env={})


# -- real sticks that are read-only or full ------------------------------------------------

# The job in a mount namespace where ``folder`` is a fresh tmpfs mounted with ``options``;
# it looks three times within one day's copy and prints what each look returned.
CHILD = """
import logging, sys
from datetime import UTC, datetime, time
from pathlib import Path
from scanner.journal.backup_dir import BackupPlan, DailyBackup

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
journal, folder = Path(sys.argv[1]), Path(sys.argv[2])
job = DailyBackup(journal, "g1", BackupPlan(folder, 3, time(3, 30)),
                  clock=lambda: datetime(2030, 1, 1, 12, tzinfo=UTC), zone=UTC)
print([job() for _ in range(3)], sorted(p.name for p in folder.iterdir()))
"""


def in_mount_namespace(folder: Path, options: str, journal: Path) -> tuple[str, str]:
    script = (f'mount -t tmpfs -o {options} gate-stick "{folder}" && '
              f'exec "{sys.executable}" -c "$CHILD" "{journal}" "{folder}"')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          env={**os.environ, "CHILD": CHILD, "PYTHONPATH": str(TESTS.parent)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.fixture
def mountable(tmp_path: Path) -> Path:
    folder = tmp_path / "stick"
    folder.mkdir()
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "probe",
             str(folder)], capture_output=True).returncode != 0:
        pytest.skip("no mount namespace here (unshare -m and mount need CAP_SYS_ADMIN)")
    return folder


def test_a_read_only_stick_is_one_warning(journal_file: Path, mountable: Path) -> None:
    out, err = in_mount_namespace(mountable, "ro,size=64m", journal_file)
    assert out.strip() == "[False, False, False] []"
    assert err.splitlines() == [f"WARNING journal backup skipped: {mountable} is read-only"]


def test_a_full_stick_is_one_warning_and_is_not_filled(journal_file: Path,
                                                       mountable: Path) -> None:
    # Room for the copy itself, not for the copy and the spare the stick keeps.
    out, err = in_mount_namespace(mountable, "size=4m", journal_file)
    assert out.strip() == "[False, False, False] []"
    [line] = err.splitlines()
    assert line.startswith(f"WARNING journal backup skipped: {mountable} has ")
    assert "MB free, the copy needs" in line


def test_a_stick_with_room_gets_its_copy(journal_file: Path, mountable: Path) -> None:
    out, err = in_mount_namespace(mountable, "size=64m", journal_file)
    results, names = out.split("] ", 1)
    assert results == "[True, True, True" and "g1-journal-20300101T120000Z.db" in names
    [line] = err.splitlines()
    assert line.startswith(f"INFO journal backup: {mountable}/g1-journal-20300101T120000Z.db:")
    with sqlite3.connect(journal_file) as conn:  # the journal itself was only read
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


# -- the daemon's own job, while it decides ------------------------------------------------


def test_the_daemons_backup_job_copies_while_reads_are_decided(tmp_path: Path,
                                                              sim_server: Any) -> None:
    """A real daemon (its scheduler, lanes and act stage) decides typed reads; its backup job,
    run while the reads go on, copies every scan journaled before it started."""
    source, stick = TypedSource(), tmp_path / "stick"
    stick.mkdir()
    gate = build_gate(
        tmp_path, gate_id="b1", events=(sim_server.world.event_ids[0],),
        api=api_config(sim_server, retries=0), lookup=LookupConfig(),
        readers=(ReaderConfig(source="hid", name="north", device=TYPED_DEVICE),),
        outputs={"relay_pin": RELAY, "relay_pulse_ms": 100},
        journal={"backup_dir": str(stick), "backup_keep": 2, "backup_same_disk": True},
        sources={"hid": lambda _config, _status: source}, clock=utc_now)
    daemon = start_daemon(gate)
    typing = threading.Event()

    def type_codes() -> None:
        for n in itertools.count():
            if typing.is_set():
                return
            source.codes.put(f"STREAM-{n:06d}-CODE")
            sleep(0.003)

    typist = threading.Thread(target=type_codes)
    typist.start()
    try:
        wait_for(lambda: sum(1 for _ in gate.journal.entries()) >= 50, "50 decided reads")
        before = {row["scan_id"] for row in gate.journal.entries()}
        gate.scheduler.kick("backup")
        wait_for(lambda: backups(stick, "b1"), "the daemon's journal copy")
        after = {row["scan_id"] for row in gate.journal.entries()}
    finally:
        typing.set()
        typist.join()
        assert daemon.stop(30) == 0
        gate.close()
    [(_stamp, copy)] = backups(stick, "b1")
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        held = {row[0] for row in conn.execute("SELECT scan_id FROM journal")}
    conn.close()
    assert before <= held and len(after) > len(before)
