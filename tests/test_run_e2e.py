"""``gate run`` as a subprocess against the simulator: a pty handheld and a video camera feed
it, mock pins take the relay, and the log, the journal and the simulator show what it did."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kits.gate import gate_doc, merged, write_toml
from kits.journal import journal_path, open_journal
from kits.waiting import WAIT

from scanner.app import Gate
from scanner.config import load_config
from scanner.decide.model import Direction

REPO = Path(__file__).resolve().parent.parent
DECISION = re.compile(r"decision (\S+) (\S+) ")
PULSED = re.compile(r"relay pulsed for scan (\S+)")
E2E_WAIT = 30.0  # the daemon syncs and uploads in the background on a shared CI machine



class Handheld:
    """A pty a serial reader opens as its port: what the test writes is what it scans."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)

    def scan(self, *codes: str, pause: float = 0.05) -> None:
        for code in codes:
            os.write(self.master, code.encode() + b"\r\n")
            time.sleep(pause)  # a person per scan, not one burst

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


class Daemon:
    """``gate run`` with its log in a file (a pipe nobody reads would block it)."""

    def __init__(self, env: dict[str, str], log: Path, prefix: list[str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "scanner.cli.main",
                                      "run"],
                                     env=env, cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, pattern: str, count: int = 1) -> None:
        deadline = time.monotonic() + E2E_WAIT
        while len(re.findall(pattern, self.log())) < count:
            assert self.proc.poll() is None, f"gate run exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {pattern!r} x{count} in:\n{self.log()}"
            time.sleep(0.05)

    def decided(self) -> list[str]:
        return [m.group(1) for m in DECISION.finditer(self.log())]

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(WAIT * 4)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._log.close()


@pytest.fixture
def handheld() -> Iterator[Handheld]:
    h = Handheld()
    yield h
    h.close()


def write_config(tmp_path: Path, sim: Any, handheld: Handheld, video: Path | None = None,
                 extra_readers: Iterable[dict[str, Any]] = (), **changes: Any) -> Path:
    """gate.toml for a daemon on ``sim`` with ``handheld`` (and a camera on ``video``);
    ``changes`` replace top-level values and add to tables (``web={"host": ...}``)."""
    readers = [{"name": "hand", "source": "serial", "port": handheld.port}]
    if video is not None:
        readers.append({"name": "cam", "source": "camera", "camera": str(video),
                        "dedup_window": 0.5})
    doc = gate_doc(
        tmp_path, gate_id="e2e-1", events=[sim.world.event_ids[0]],
        api={"url": sim.url, "connect_timeout": 1.0, "read_timeout": 2.0, "retries": 0},
        upload={"interval": 0.2}, run={"sync_interval": 5},
        outputs={"relay_pin": 17, "relay_pulse_ms": 100}, readers=[*readers, *extra_readers])
    return write_toml(tmp_path / "gate.toml", merged(doc, **changes))


def environment(config: Path, sim: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "NOTIFY_"))}
    return env | {"GATE_CONFIG": str(config), "GATE_API_TOKEN": sim.token}


def valid_barcodes(config: Path, env: dict[str, str], count: int) -> list[str]:
    """Tickets the gate admits, synced into its store before it starts."""
    with Gate(load_config(config, env=env)) as gate:
        gate.syncer.run_once()
        keeper = gate.gatekeeper
        codes = [t.barcode for t in gate.store.iter_tickets(gate.config.events[0])
                 if keeper.decide(t.barcode, Direction.IN).granted][:count]
    assert len(codes) == count
    return codes


def journaled(config: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    with open_journal(journal_path(load_config(config, env=env))) as journal:
        return {e["scan_id"]: e for e in journal.entries()}


@pytest.mark.slow
def test_pty_and_video_codes_are_decided_the_relay_pulses_and_scans_reach_the_server(
        tmp_path: Path, sim_server: Any, handheld: Handheld) -> None:
    from scanner.bench.video import write_ticket_video

    config = write_config(tmp_path, sim_server, handheld, video=tmp_path / "cam.avi")
    env = environment(config, sim_server)
    hand_code, *cam_codes = valid_barcodes(config, env, 3)
    write_ticket_video(tmp_path / "cam.avi", cam_codes, hold=8, gap=4)
    daemon = Daemon(env, tmp_path / "run.log")
    try:
        daemon.wait_log(r"decision \S+ GRANTED IN \S+ cam", 2)
        handheld.scan(hand_code)
        daemon.wait_log(r"decision \S+ GRANTED IN \S+ hand")
        daemon.wait_log(PULSED.pattern, 3)
        deadline = time.monotonic() + E2E_WAIT
        while {s["barcode"] for s in sim_server.world.scans} < {hand_code, *cam_codes}:
            assert time.monotonic() < deadline, "the scans did not reach the simulator"
            time.sleep(0.1)
    finally:
        code = daemon.signal(signal.SIGTERM)
    assert code == 0
    entries = journaled(config, environment(config, sim_server))
    pulsed = PULSED.findall(daemon.log())
    assert len(pulsed) == 3 and all(entries[s]["actuated_at"] for s in pulsed)


@pytest.mark.slow
def test_every_scan_is_uploaded_after_the_server_comes_back(
        tmp_path: Path, sim_server: Any, handheld: Handheld) -> None:
    config = write_config(tmp_path, sim_server, handheld)
    daemon = Daemon(environment(config, sim_server), tmp_path / "run.log")
    codes = [f"UNKNOWN-{i:04d}-CODE" for i in range(6)]
    try:
        daemon.wait_log("sync .*delta|sync .*full")
        sim_server.faults.update(drop_rate=1.0)  # the venue's internet goes down
        handheld.scan(*codes[:3])
        daemon.wait_log("upload paused", 1)
        handheld.scan(*codes[3:])
        daemon.wait_log(DECISION.pattern, len(codes))
        sim_server.faults.update(drop_rate=0.0)
        deadline = time.monotonic() + E2E_WAIT
        while not set(codes) <= {s["barcode"] for s in sim_server.world.scans}:
            assert time.monotonic() < deadline, f"not all uploaded:\n{daemon.log()}"
            time.sleep(0.1)
    finally:
        code = daemon.signal(signal.SIGTERM)
    assert code == 0


@pytest.mark.slow
def test_sigterm_mid_stream_finishes_and_journals_every_decision(
        tmp_path: Path, sim_server: Any, handheld: Handheld) -> None:
    config = write_config(tmp_path, sim_server, handheld)
    daemon = Daemon(environment(config, sim_server), tmp_path / "run.log")
    try:
        daemon.wait_log("starting")
        codes = [f"STREAM-{i:04d}-CODE" for i in range(60)]
        stream = threading.Thread(target=handheld.scan, args=codes, kwargs={"pause": 0.02})
        stream.start()
        daemon.wait_log(DECISION.pattern, 3)
    finally:
        code = daemon.signal(signal.SIGTERM)  # while the handheld's lines still arrive
        stream.join()
    assert code == 0, daemon.log()
    decided = daemon.decided()
    entries = journaled(config, environment(config, sim_server))
    assert decided and all(scan_id in entries for scan_id in decided)
    assert "stopped" in daemon.log()


@pytest.mark.slow
def test_sigkill_loses_no_decision_that_was_logged(
        tmp_path: Path, sim_server: Any, handheld: Handheld) -> None:
    config = write_config(tmp_path, sim_server, handheld)
    daemon = Daemon(environment(config, sim_server), tmp_path / "run.log")
    try:
        daemon.wait_log("starting")
        # A stream, not a burst: lines typed before the reader opened its port are gone.
        codes = [f"KILLED-{i:04d}-CODE" for i in range(60)]
        stream = threading.Thread(target=handheld.scan, args=codes, kwargs={"pause": 0.01})
        stream.start()
        daemon.wait_log(DECISION.pattern, 5)
    finally:
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.kill()
        stream.join()
    # A line the kill cut short was never logged whole: only whole lines count.
    decided = daemon.decided()
    entries = journaled(config, environment(config, sim_server))
    assert len(decided) >= 5
    assert [s for s in decided if s not in entries] == []


@pytest.mark.slow
def test_gate_status_says_the_daemon_runs_is_online_and_which_reader_is_missing(
        tmp_path: Path, sim_server: Any, handheld: Handheld) -> None:
    """``gate status`` beside a running ``gate run``: running with its pid, online, each
    reader (one unplugged), the problem; after SIGTERM, not running."""
    import json

    config = write_config(tmp_path, sim_server, handheld, extra_readers=[
        {"name": "spare", "source": "serial", "port": str(tmp_path / "no-such-tty")}])
    env = environment(config, sim_server)
    state = tmp_path / "gate.db-run.json"

    def said() -> dict[str, Any]:
        try:
            return dict(json.loads(state.read_text()))
        except (OSError, ValueError):
            return {}

    def status() -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "scanner.cli.main", "status"], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    daemon = Daemon(env, tmp_path / "run.log")
    try:
        deadline = time.monotonic() + E2E_WAIT
        while not (said().get("online") and said().get("readers", {}).get("hand")):
            assert daemon.proc.poll() is None, daemon.log()
            assert time.monotonic() < deadline, f"state file: {said()}\n{daemon.log()}"
            time.sleep(0.1)
        lines = status()
        assert re.fullmatch(r"gate e2e-1: \d+ tickets in the store", lines[0]), lines
        assert re.fullmatch(rf"daemon: running since \S+ \(pid {daemon.proc.pid}\), online; "
                            r"readers: hand connected, spare DISCONNECTED", lines[1]), lines
        assert lines[2] == "  problems: reader spare disconnected"
        assert daemon.signal(signal.SIGTERM) == 0
        lines = status()
        assert re.fullmatch(r"daemon: NOT RUNNING \(stopped, last seen \S+\)", lines[1]), lines
    finally:
        daemon.kill()
