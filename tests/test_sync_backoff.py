"""``gate sync`` keeps trying through a long outage, backing off to a cap."""

from __future__ import annotations

import threading
from pathlib import Path

from scanner.backoff import MAX_BACKOFF
from scanner.clock import utc_now
from scanner.config import Secret, SyncConfig
from scanner.store.db import make_engine
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import VivenuClient


class CountingStop(threading.Event):
    """A stop flag whose waits return at once, recorded, and that sets after ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


def test_a_days_long_outage_backs_off_to_the_cap_and_never_ends_the_loop(
        tmp_path: Path) -> None:
    # Nothing listens on port 9 of loopback: every run fails at once with no connection.
    api = VivenuClient("http://127.0.0.1:9", Secret("tok"), retries=0, connect_timeout=0.5)
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    syncer = Syncer(api, TicketStore(engine), SyncConfig(interval=10.0), events=("ev-1",),
                    clock=utc_now)
    stop = CountingStop(limit=1100)  # past 2**1024, where a float power overflows
    try:
        syncer.run_forever(stop)
    finally:
        api.close()
        engine.dispose()
    assert len(stop.waits) == 1100
    assert stop.waits[:4] == [20.0, 40.0, 80.0, 160.0]
    assert set(stop.waits[5:]) == {MAX_BACKOFF}
