"""The daemon in-process: ``start_daemon(Gate(...))`` with a fake reader the test types into,
mock pins, the simulator on loopback and a real AF_UNIX notify socket."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kits import loopback
from kits.gate import build_gate
from kits.gpio import FIRE, PASSAGE, RELAY, rises
from kits.journal import api_config, valid_doc
from kits.run import NotifySocket
from kits.waiting import wait_for

from hardware.reads import RawRead, StatusFn, now_ns
from scanner.app.daemon import Daemon, start_daemon
from scanner.clock import Clock, utc_now
from scanner.config import LookupConfig, ReaderConfig, WebConfig

# Where the configuration says the rig's HID scanner is; the test's TypedSource answers it.
TYPED_DEVICE = "/dev/input/by-id/usb-typed-by-the-test-event-kbd"


class TypedSource:
    """A device the test types codes into; alive while its loop turns, hung on demand."""

    def __init__(self, name: str = "typed") -> None:
        self.name = name
        self.codes: queue.Queue[str | bytes] = queue.Queue()
        self.hang = threading.Event()
        self.release = threading.Event()  # stop() does not release a hang: a stuck driver
        self.stopped = threading.Event()
        self.alive_ns = now_ns()
        self.connected: bool | None = True  # False: unplugged

    def __iter__(self) -> Iterator[RawRead]:
        while not self.stopped.is_set():
            if self.hang.is_set():
                self.release.wait()  # a driver stuck in a read: the loop stops turning
                return
            self.alive_ns = now_ns()
            try:
                code = self.codes.get(timeout=0.02)
            except queue.Empty:
                continue
            yield RawRead(code, self.name, now_ns())

    def stop(self) -> None:
        self.stopped.set()


class Rig:
    """``gate run``'s daemon in-process over a kit gate (``build_gate``) on the simulator,
    online lookup on; its one reader, a keyboard-wedge (HID) scanner, is what the test
    types into."""

    GATE_ID = "d1"

    def __init__(self, tmp_path: Path, sim: Any, notify: NotifySocket | None = None,
                 watchdog: float | None = None, clock: Clock = utc_now,
                 web: WebConfig | None = None, heartbeat_timeout: float = 10.0,
                 **outputs: Any) -> None:
        self.source = TypedSource()
        self.sim = sim
        self.event = sim.world.event_ids[0]
        notifier = notify.notifier(watchdog) if notify is not None else None
        self.gate = build_gate(
            tmp_path, gate_id=self.GATE_ID, events=(self.event,),
            api=api_config(sim, retries=0), lookup=LookupConfig(), upload={"interval": 0.2},
            readers=(ReaderConfig(source="hid", name="north", device=TYPED_DEVICE),),
            outputs={"relay_pin": RELAY, "relay_pulse_ms": 100, **outputs},
            run={"heartbeat_timeout": heartbeat_timeout}, web=web or WebConfig(enabled=False),
            sources={"hid": self.open_source}, notifier=notifier, clock=clock)
        self.daemon: Daemon = start_daemon(self.gate)

    def open_source(self, _config: ReaderConfig, _status: StatusFn) -> TypedSource:
        return self.source

    @property
    def relay(self) -> Any:
        return self.gate.outputs.factory.pin(RELAY)

    def entries(self) -> list[dict[str, Any]]:
        return list(self.gate.journal.entries())

    def decided(self, count: int) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.entries()) >= count, f"{count} journaled scans")
        return self.entries()

    def close(self) -> int | None:
        code = self.daemon.stop(30)
        self.gate.close()
        return code


@pytest.fixture
def rig(tmp_path: Path, sim_server: Any) -> Iterator[Rig]:
    r = Rig(tmp_path, sim_server)
    yield r
    r.close()


def synced(rig: Rig) -> str:
    """A barcode the gate admits, once the first sync has stored it."""
    barcode: str = valid_doc(rig.sim.world, rig.event)["barcode"]
    wait_for(lambda: rig.gate.store.by_barcode(barcode), "the first sync")
    return barcode


@pytest.mark.slow
def test_a_read_is_decided_journaled_and_opens_the_relay(rig: Rig) -> None:
    rig.source.codes.put(synced(rig))
    wait_for(lambda: any(e.get("actuated_at") for e in rig.entries()), "the actuation")
    [entry] = rig.entries()
    assert entry["reason"] == "GRANTED"
    assert rises(rig.relay) == 1


@pytest.mark.slow
def test_a_refused_read_is_journaled_as_malformed_and_does_not_open(rig: Rig) -> None:
    rig.source.codes.put(b"\xff\xfeGARBAGE")
    [entry] = rig.decided(1)
    assert entry["reason"] == "MALFORMED_READ"
    assert rises(rig.relay) == 0


@pytest.mark.slow
def test_scans_reach_the_simulator(rig: Rig) -> None:
    barcode = synced(rig)
    rig.source.codes.put(barcode)
    wait_for(lambda: [s for s in rig.sim.world.scans if s["barcode"] == barcode],
             "the upload")


@pytest.mark.slow
def test_notify_socket_hears_ready_then_watchdog(tmp_path: Path, sim_server: Any) -> None:
    notify = NotifySocket(tmp_path / "notify")
    rig = Rig(tmp_path, sim_server, notify, watchdog=0.2)
    try:
        wait_for(lambda: "WATCHDOG=1" in (notify.drain() and notify.messages), "a ping")
        assert notify.messages.index("READY=1") < notify.messages.index("WATCHDOG=1")
    finally:
        rig.close()
        notify.close()


@pytest.mark.slow
def test_a_hung_reader_stops_the_watchdog_pings(tmp_path: Path, sim_server: Any) -> None:
    notify = NotifySocket(tmp_path / "notify")
    rig = Rig(tmp_path, sim_server, notify, watchdog=0.2, heartbeat_timeout=1.0)
    try:
        wait_for(lambda: "WATCHDOG=1" in (notify.drain() and notify.messages), "a ping")
        rig.source.hang.set()
        # heartbeat_timeout is 1 s: then the pings stop and stay stopped.
        wait_for(lambda: any("reader:north hung" in m for m in notify.drain()),
                 "the status saying the reader hung")
        notify.drain()
        time.sleep(0.6)
        assert "WATCHDOG=1" not in notify.drain()
    finally:
        rig.source.release.set()
        rig.close()
        notify.close()


@pytest.mark.slow
def test_a_reader_whose_stuck_driver_lets_go_is_restarted_and_decides_again(
        tmp_path: Path, sim_server: Any) -> None:
    rig = Rig(tmp_path, sim_server, heartbeat_timeout=1.0)
    try:
        barcode = synced(rig)
        supervisor = rig.daemon.supervisor
        rig.source.hang.set()
        wait_for(lambda: "reader:north hung" in supervisor.problems(), "the hang noticed")
        stuck, rig.source = rig.source, TypedSource()  # what the restart opens
        stuck.release.set()  # the driver returns from its read
        wait_for(lambda: supervisor.problems() == [], "the reader back up")
        rig.source.codes.put(barcode)
        assert [e["reason"] for e in rig.decided(1)] == ["GRANTED"]
    finally:
        rig.source.release.set()
        rig.close()


@pytest.mark.slow
def test_a_fire_alarm_holds_the_relay_open_and_scans_are_still_decided(
        tmp_path: Path, sim_server: Any) -> None:
    rig = Rig(tmp_path, sim_server, fire_alarm_pin=FIRE)
    relay = rig.relay
    try:
        loop = rig.gate.outputs.factory.pin(FIRE)
        loop.drive_low()  # the loop closed: normal running
        assert not rig.gate.outputs.fire_alarm and not rig.gate.outputs.relay_open
        loop.drive_high()  # the loop opens: fire
        rig.source.codes.put("UNKNOWN-CODE-1")
        [entry] = rig.decided(1)
        assert entry["reason"] == "UNKNOWN_BARCODE"
        time.sleep(0.3)  # longer than a relay pulse: the hold does not end with one
        assert relay.state is True
    finally:
        rig.close()
    assert relay.state is True, "a gate stopped under fire alarm stays open"


@pytest.mark.slow
def test_a_grant_without_a_passage_is_recorded_as_not_passed(
        tmp_path: Path, sim_server: Any) -> None:
    rig = Rig(tmp_path, sim_server, passage_pin=PASSAGE, passage_timeout=0.2)
    try:
        rig.source.codes.put(synced(rig))
        wait_for(lambda: any(e.get("passed") is False for e in rig.entries()),
                 "the grant marked not passed")
    finally:
        rig.close()


def test_serial_and_hid_readers_decide_on_their_source_thread_stdin_and_camera_do_not() -> None:
    """Their loops end within a poll of stop(); stdin's read cannot be interrupted, so its
    pipeline keeps the consumer thread that can leave it blocked."""
    from scanner.run.readers import stops_promptly

    assert [stops_promptly(ReaderConfig(source=source))
            for source in ("serial", "hid", "stdin", "camera")] == [True, True, False, False]


def test_favour_decisions_freezes_what_start_up_built_and_shortens_the_switch_interval(
) -> None:
    """In a process of its own: both settings are the whole interpreter's."""
    probe = ("import gc, sys\n"
             "from scanner.app.daemon import DECISION_SWITCH_INTERVAL, favour_decisions\n"
             "before = gc.get_freeze_count()\n"
             "favour_decisions()\n"
             "print(before, gc.get_freeze_count(), sys.getswitchinterval() =="
             " DECISION_SWITCH_INTERVAL)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "0" and int(out[1]) > 1000 and out[2] == "True"


@pytest.mark.slow
def test_an_unplugged_reader_makes_healthz_503_and_the_status_say_so(
        tmp_path: Path, sim_server: Any) -> None:
    """A reader whose device is gone cannot admit anyone: /healthz answers 503 naming it,
    and systemd's STATUS line says it, until the device is back."""
    import httpx
    from kits.kiosk import free_port

    port = free_port()
    notify = NotifySocket(tmp_path / "notify")
    # A loaded machine may delay the kiosk's beat past 1 s: not what this test is about.
    rig = Rig(tmp_path, sim_server, notify, web=WebConfig(port=port))
    url = f"http://127.0.0.1:{port}/healthz"

    def healthz() -> httpx.Response | None:
        try:
            return loopback.get(url, timeout=2)
        except httpx.HTTPError:
            return None

    try:
        # Healthy once the first sync is whole: its process starts slowly on a loaded machine.
        wait_for(lambda: (r := healthz()) is not None and r.status_code == 200, "healthy",
                 within=60)
        rig.source.connected = False
        wait_for(lambda: (r := healthz()) is not None and r.status_code == 503, "a 503")
        answer = healthz()
        assert answer is not None
        assert {k: answer.json()[k] for k in ("ok", "reasons")} == {
            "ok": False, "reasons": ["reader north disconnected"]}
        wait_for(lambda: any(m.startswith("STATUS=") and m.endswith(
            "workers up; reader north disconnected") for m in notify.drain()),
            "the STATUS line naming the reader")
        rig.source.connected = True
        wait_for(lambda: (r := healthz()) is not None and r.status_code == 200, "healthy again")
    finally:
        rig.close()
        notify.close()


def test_the_health_messages_upload_queue_is_counted_every_ten_seconds(
        tmp_path: Path) -> None:
    """Counting the journal for every health message (every 2 s) was a tenth of a venue
    gate's mesh thread; the control room's upload queue may be QUEUE_EVERY old."""
    from kits.journal import make_decision, make_ticket

    from scanner.app.daemon import QUEUE_EVERY, health_of

    gate = build_gate(tmp_path)
    try:
        now = [100.0]
        health = health_of(gate, monotonic=lambda: now[0])
        assert health().queue == 0
        for n in (1, 2):
            gate.journal.record(make_decision(make_ticket(n)), scan_id=f"s{n}",
                                scanned_at="2030-05-01T10:00:00.000Z", latency_ms=1.0)
        now[0] += QUEUE_EVERY / 2
        assert health().queue == 0
        now[0] += QUEUE_EVERY / 2
        assert health().queue == 2
    finally:
        gate.close()
