"""``gate bench venue``'s gates: started in batches on their READY=1, and a gate that does
not start or goes away named in one line with the end of its log, never waited for."""

from __future__ import annotations

import time
from pathlib import Path

import click
import pytest

from scanner.bench import venue_gates


def _venue(tmp_path: Path, tables: list[dict[str, object]], gates: int = 2) -> venue_gates.Venue:
    key = tmp_path / "venue.key"
    key.write_bytes(venue_gates.KEY)
    key.chmod(0o600)
    # No broker there: the gates start and decide alone, as READY=1 does not wait for one.
    return venue_gates.Venue(gates, tables, "mqtt://127.0.0.1:1", tmp_path)


@pytest.mark.slow
def test_gates_start_in_batches_each_on_its_ready(tmp_path: Path) -> None:
    gates = _venue(tmp_path, [{"id": "grounds"}], gates=3)
    try:
        gates.start(batch=2, timeout=120)
        assert {p.pid for p in gates.procs} <= gates.notices.ready
        assert gates.ask_all("connected") == [False, False, False]
    finally:
        gates.close(30)
    assert not any(p.is_alive() for p in gates.procs)


@pytest.mark.slow
def test_a_gate_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    gates = _venue(tmp_path, [{"id": "grounds"}, {"id": "bar", "parent": "nowhere"}])
    try:
        with pytest.raises(click.ClickException) as caught:
            gates.start(batch=2, timeout=120)
    finally:
        gates.close(30)
    line = caught.value.message
    assert "\n" not in line
    assert line.startswith("gate g0") and "did not start: ConfigError" in line
    assert "log: " in line and "the gate did not start" in line


@pytest.mark.slow
def test_a_gate_gone_mid_run_is_named_not_waited_for(tmp_path: Path) -> None:
    gates = _venue(tmp_path, [{"id": "grounds"}])
    try:
        gates.start(batch=2, timeout=120)
        gates.procs[1].kill()
        started = time.monotonic()
        with pytest.raises(click.ClickException, match=r"^gate g01 is gone \(exit code -9\)"):
            gates.ask_all("counts", timeout=30)
        assert time.monotonic() - started < 30
    finally:
        gates.close(30)
