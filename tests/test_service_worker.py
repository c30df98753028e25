"""The one worker shape over a service with threads of its own: the act stage on mock pins
(the kiosk server's turn is in test_kiosk_daemon)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kits.gpio import make
from kits.waiting import wait_for
from test_act import RecordingJournal, scan

from hardware.gpio import GpioOutputs
from scanner.act import ActStage
from scanner.run.service import ServiceWorker
from scanner.run.supervisor import Supervisor
from scanner.run.worker import Stage, WorkerExited


@pytest.fixture
def outputs() -> Iterator[GpioOutputs]:
    pins = make()
    yield pins
    pins.close()


def _act(stage: ActStage) -> ServiceWorker:
    return ServiceWorker("act", stage, heartbeat_timeout=0.5, stage=Stage.OUTPUT,
                         essential=True)


def test_the_worker_starts_its_service_and_stops_it_after_what_is_queued(
        outputs: GpioOutputs) -> None:
    journal = RecordingJournal()
    stage = ActStage(outputs, journal)
    worker = _act(stage)
    worker.start()
    wait_for(lambda: stage.serving, "the act stage serving")
    stage.submit(scan(scan_id="last"))
    worker.stop()
    assert worker.join(5)
    assert not stage.serving and "last" in journal.actuated and worker.failure is None


def test_the_worker_borrows_its_services_heartbeat(outputs: GpioOutputs) -> None:
    stage = ActStage(outputs, RecordingJournal(), heartbeat_interval=0.05)
    worker = _act(stage)
    worker.start()
    try:
        wait_for(lambda: stage.serving, "the act stage serving")
        started = worker.heartbeat
        wait_for(lambda: stage.heartbeat > started + 0.6, "the stage's loop turning")
        assert not worker.stale(worker.clock())  # its own beat is older than the timeout
        assert worker.heartbeat >= stage.heartbeat - 0.1
    finally:
        worker.stop()
        worker.join(5)


def test_a_service_whose_threads_ended_is_a_dead_worker_and_is_restarted(
        outputs: GpioOutputs) -> None:
    stage = ActStage(outputs, RecordingJournal())
    worker = _act(stage)
    supervisor = Supervisor([worker], tick=0.05, restart_floor=0.05)
    supervisor.start()
    try:
        wait_for(lambda: stage.serving, "the act stage serving")
        stage.stop()  # its loop ends under the worker, as a crash of its thread would
        wait_for(lambda: isinstance(worker.failure, WorkerExited), "the worker's death")
        assert "act" in str(worker.failure)
        wait_for(lambda: (supervisor.check(), stage.serving)[1], "the supervisor's restart")
        assert supervisor.result is None
    finally:
        supervisor.shutdown()
