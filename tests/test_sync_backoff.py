"""``gate sync`` keeps trying through a long outage: its job, under the scheduler's backoff,
waits twice as long after each failure, up to a cap, and never overflows."""

from __future__ import annotations

import threading
from pathlib import Path

from scanner.backoff import MAX_BACKOFF
from scanner.clock import utc_now
from scanner.config import Secret, SyncConfig
from scanner.databases import make_engine
from scanner.run.jobs import sync_job
from scanner.run.schedule import Job, JobState
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.vivenu.client import VivenuClient


def test_a_days_long_outage_backs_off_to_the_cap_and_never_ends_the_loop(
        tmp_path: Path) -> None:
    # Nothing listens on port 9 of loopback: every run fails at once with no connection.
    api = VivenuClient("http://127.0.0.1:9", Secret("tok"), retries=0, connect_timeout=0.5)
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    syncer = Syncer(api, TicketStore(engine), SyncConfig(interval=10.0), events=("ev-1",),
                    clock=utc_now)
    stop = threading.Event()
    job = sync_job(syncer, lambda: stop, every=10.0)
    state = JobState(job, job.every)
    waits, results = [], []
    try:
        for _ in range(1100):  # past 2**1024, where a float power overflows
            ok = job.run()
            state.finished(ok)
            results.append(ok)
            waits.append(state.wait)
    finally:
        api.close()
        engine.dispose()
    assert results == [False] * 1100
    assert waits[:4] == [20.0, 40.0, 80.0, 160.0]
    assert set(waits[5:]) == {MAX_BACKOFF}


def test_a_success_after_the_outage_is_a_recovery_and_resets_the_wait() -> None:
    state = JobState(Job("sync", lambda: True, every=10.0, timeout=60.0), 10.0)
    for _ in range(1100):
        assert not state.finished(False)
    assert state.finished(True)
    assert (state.wait, state.failures) == (10.0, 0)
    assert not state.finished(True)
