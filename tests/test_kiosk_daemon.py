"""What ``gate run`` tells its kiosk, without a browser: health from the supervisor through
its readiness, the online badge from the jobs, the frame rate, the "deciding alone" banner,
the web worker's start and stop."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from kits import loopback
from kits.kiosk import free_port
from kits.run import Loop
from kits.waiting import wait_for

from scanner.kiosk.parts import KioskParts, Probes, Reachability, WebOptions
from scanner.kiosk.reader_probes import Rate
from scanner.kiosk.server import KioskServer
from scanner.kiosk.state import banners, feedback, venue_counters
from scanner.run.jobs import upload_job
from scanner.run.readiness import Readiness
from scanner.run.service import ServiceWorker
from scanner.run.supervisor import Supervisor
from scanner.run.worker import Stage
from scanner.upload.outbox import UploadReport


def test_health_names_no_worker_before_start_and_the_stale_one_after(
        caplog: pytest.LogCaptureFixture) -> None:
    steady, stuck = Loop("steady"), Loop("stuck", heartbeat_timeout=0.2)
    supervisor = Supervisor([steady, stuck], tick=0.05)
    assert supervisor.problems() == ["not ready: starting"]
    supervisor.start()
    try:
        assert supervisor.problems() == []
        stuck.hang.set()  # stops beating, as a driver stuck in a read
        wait_for(lambda: any(p.startswith("stuck") for p in supervisor.problems()),
                 "a stale heartbeat in the health")
        assert not any(p.startswith("steady") for p in supervisor.problems())
    finally:
        stuck.release.set()
        supervisor.shutdown()
    assert supervisor.problems() == ["stopping"]


def test_the_readiness_says_starting_until_a_supervisor_writes_it_then_what_it_says() -> None:
    """/healthz and the state file are built before the supervisor: they read a Readiness."""
    readiness = Readiness()
    assert readiness.health() == (False, ["not ready: starting"])
    stuck = Loop("stuck", heartbeat_timeout=0.2)
    supervisor = Supervisor([Loop("steady"), stuck], tick=0.05, readiness=readiness)
    assert readiness.health() == (False, ["not ready: starting"])
    supervisor.start()
    try:
        assert readiness.health() == (True, [])
        stuck.hang.set()
        wait_for(lambda: any(p.startswith("stuck") for p in readiness.problems()),
                 "the stale worker in the readiness")
    finally:
        stuck.release.set()
        supervisor.shutdown()
    assert readiness.health() == (False, ["stopping"])


class _Outbox:
    def __init__(self, report: UploadReport) -> None:
        self.report = report

    def drain_once(self) -> UploadReport:
        return self.report


@pytest.mark.parametrize(("report", "badge"), [
    (UploadReport(), None),                         # nothing queued: nothing was asked
    (UploadReport(sent=3, batches=1), True),
    (UploadReport(errors=["e1: ServerUnavailable"]), False),
])
def test_an_upload_tells_the_badge_only_what_it_asked(report: UploadReport,
                                                      badge: bool | None) -> None:
    link = Reachability()
    upload_job(_Outbox(report), 1.0, report=link.report).run()  # type: ignore[arg-type]
    assert link() is badge


def test_frame_rate_is_per_second_and_starts_over_when_the_count_goes_down() -> None:
    now, count = [0.0], [0]
    rate = Rate(lambda: count[0], clock=lambda: now[0])
    assert rate() is None  # one sample says nothing yet
    now[0], count[0] = 2.0, 60
    assert rate() == pytest.approx(30.0)
    now[0], count[0] = 3.0, 5  # the reader restarted: its decoder counts from 0
    assert rate() == pytest.approx(30.0)  # the last figure until a new span is long enough
    now[0], count[0] = 4.0, 15
    assert rate() == pytest.approx(10.0)


def _parts(mesh: dict[str, Any] | None) -> KioskParts:
    return KioskParts(gate_id="g", listener=None, check=None, submit=None,  # type: ignore[arg-type]
                      status=dict, health=lambda: (True, []), tallies=list, latencies=None,  # type: ignore[arg-type]
                      probes=Probes(mesh=lambda: mesh))


@pytest.mark.parametrize(("mesh", "shown"), [
    (None, False), ({"deciding_alone": False}, False), ({"deciding_alone": True}, True),
    ({"deciding_alone": None}, False),  # the link is not running in this process
])
def test_the_deciding_alone_banner_follows_the_mesh(mesh: dict[str, Any] | None,
                                                     shown: bool) -> None:
    kinds = [b["kind"] for b in banners(_parts(mesh), fire_alarm=False)]
    assert ("mesh" in kinds) is shown


@pytest.mark.parametrize(("mesh", "venue"), [
    (None, None), ({"deciding_alone": False, "venue": None}, None),
    ({"venue": {"inside": 3, "in": 5, "out": 2}}, {"inside": 3, "in": 5, "out": 2}),
])
def test_the_venue_counters_come_from_the_mesh(mesh: dict[str, Any] | None,
                                               venue: dict[str, int] | None) -> None:
    assert venue_counters(_parts(mesh)) == venue


def _server(port: int) -> KioskServer:
    from scanner.act import Fanout

    parts = KioskParts(gate_id="g", listener=Fanout().subscribe("kiosk"), check=None,  # type: ignore[arg-type]
                       submit=None, status=dict, health=lambda: (True, []),  # type: ignore[arg-type]
                       tallies=list, latencies=None)  # type: ignore[arg-type]
    return KioskServer(WebOptions(port=port), parts)


def _web(server: KioskServer) -> ServiceWorker:
    return ServiceWorker("web", server, heartbeat_timeout=5, stage=Stage.OUTPUT)


def test_the_web_worker_serves_until_stopped_and_then_frees_its_port() -> None:
    port = free_port()
    worker = _web(_server(port))
    worker.start()
    try:
        wait_for(lambda: worker.service.serving, "the kiosk serving")
        assert loopback.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        assert not worker.stale(worker.clock())
    finally:
        worker.stop()
        assert worker.join(5)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # free again


def test_a_taken_port_makes_the_web_worker_fail_not_hang() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        worker = _web(_server(taken.getsockname()[1]))
        worker.start()
        assert worker.join(5)
    assert "cannot listen" in str(worker.failure)


@pytest.mark.parametrize(("device", "wanted"), [
    ({}, {"sound": True, "haptic": True}),
    ({"enableSoundFeedback": False}, {"sound": False, "haptic": True}),
    ({"enableSoundFeedback": True, "enableHapticFeedback": False},
     {"sound": True, "haptic": False}),
])
def test_sound_and_vibration_follow_me(device: dict[str, Any],
                                       wanted: dict[str, bool]) -> None:
    assert feedback({"deviceSettings": device}) == wanted
    assert feedback(None) == {"sound": True, "haptic": True}
