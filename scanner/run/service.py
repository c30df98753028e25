"""A service in the one worker shape: something with its own threads (the act stage, the
kiosk server) started, watched and stopped by a worker the supervisor keeps alive.

The worker's thread starts the service, then checks every ``POLL`` seconds that it still
serves; a service whose threads ended is a dead worker, restarted with the supervisor's
backoff. Its heartbeat is the service's own loop's: a service that serves but stopped
turning is a hung worker. A service that cannot start (a taken port) is a failed start, and
the gate goes on without it unless the worker is essential.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from scanner.run.worker import Stage, Worker, WorkerExited

POLL = 0.5


class Service(Protocol):
    """What a ``ServiceWorker`` drives (``scanner.act.ActStage``, ``KioskServer``)."""

    def start(self) -> object: ...
    def stop(self) -> None: ...
    @property
    def serving(self) -> bool: ...
    @property
    def heartbeat(self) -> float: ...


class ServiceWorker(Worker):
    def __init__(self, name: str, service: Service, *, heartbeat_timeout: float,
                 stage: Stage, essential: bool = False,
                 on_started: Callable[[], object] = lambda: None) -> None:
        super().__init__(name, heartbeat_timeout=heartbeat_timeout, stage=stage,
                         essential=essential)
        self.service = service
        self.on_started = on_started  # said once it serves (the kiosk's URL in the log)

    def run(self) -> None:
        self.service.start()
        try:
            self.on_started()
            while not self.stopping.wait(POLL):
                if not self.service.serving:
                    raise WorkerExited(f"worker {self.name}: its service's threads ended")
        finally:
            self.service.stop()  # the act stage acts on what is queued first

    def stale(self, now: float) -> bool:
        if self.running and self.service.serving:
            self.heartbeat = max(self.heartbeat, self.service.heartbeat)
        return super().stale(now)
