"""``gate check``, ``gate journal``, ``gate upload`` and the two benchmarks, run through the
real CLI entry point with a configuration from the environment."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from kits.gate import build_gate, gate_toml
from kits.journal import make_ticket

from scanner.cli.main import main


@pytest.fixture
def gate_env(tmp_path: Path, monkeypatch) -> Path:
    """A configured gate with two tickets in its store; returns its database path."""
    toml = gate_toml(tmp_path, api={"retries": 0})
    for name in ("GATE_API_URL", "GATE_API_TOKEN", "GATE_API_TOKEN_FILE", "GATE_EVENTS",
                 "GATE_DB", "GATE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATE_CONFIG", str(toml))
    with build_gate(tmp_path, api={"retries": 0}) as gate:
        gate.store.upsert([make_ticket(1), make_ticket(2)])
    return Path(gate.config.db)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_grants_with_exit_code_0_and_documented_json(gate_env, capsys):
    code, out, _ = run(capsys, "check", make_ticket(1).barcode, "--json")
    doc = json.loads(out)
    assert code == 0
    assert {k: doc[k] for k in ("granted", "reason", "direction", "barcode", "offline")} == {
        "granted": True, "reason": "GRANTED", "direction": "IN",
        "barcode": make_ticket(1).barcode, "offline": True}
    assert doc["ticket"]["_id"] == make_ticket(1).id


def test_check_denies_with_exit_code_1(gate_env, capsys):
    run(capsys, "check", make_ticket(1).barcode)
    code, out, _ = run(capsys, "check", make_ticket(1).barcode, "--json")
    assert (code, json.loads(out)["reason"]) == (1, "ALREADY_INSIDE")


def test_check_takes_the_direction(gate_env, capsys):
    run(capsys, "check", make_ticket(1).barcode)
    code, out, _ = run(capsys, "check", make_ticket(1).barcode, "--direction", "out")
    assert code == 0 and out.startswith("CHECKED_OUT")


def test_journal_csv_lists_every_check(gate_env, capsys):
    run(capsys, "check", make_ticket(1).barcode)
    run(capsys, "check", "UNKNOWN-000001")
    _, out, _ = run(capsys, "journal", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["barcode"], r["reason"]) for r in rows] == [
        (make_ticket(1).barcode, "GRANTED"), ("UNKNOWN-000001", "UNKNOWN_BARCODE")]


def test_journal_json_lines_since_a_time(gate_env, capsys):
    run(capsys, "check", make_ticket(1).barcode)
    _, out, _ = run(capsys, "journal", "--json", "--since", "2999-01-01T00:00:00Z")
    assert out == ""
    _, out, _ = run(capsys, "journal", "--json", "--since", "2000-01-01T00:00:00Z")
    assert [json.loads(line)["barcode"] for line in out.splitlines()] == \
        [make_ticket(1).barcode]


def test_journal_refuses_a_bad_since_in_one_line(gate_env, capsys):
    code, _, err = run(capsys, "journal", "--since", "last tuesday")
    assert code == 2 and err.strip() == "Error: --since: not an ISO-8601 time: 'last tuesday'"


def test_upload_once_sends_checked_scans_to_the_server(gate_env, capsys, monkeypatch,
                                                      sim_server):
    event = sim_server.world.event_ids[0]
    monkeypatch.setenv("GATE_API_URL", sim_server.url)
    monkeypatch.setenv("GATE_API_TOKEN", sim_server.token)
    monkeypatch.setenv("GATE_EVENTS", event)
    run(capsys, "check", "UNKNOWN-000001")  # filed under the gate's one event
    code, out, _ = run(capsys, "upload", "--once", "--json")
    assert (code, json.loads(out)["sent"]) == (0, 1)
    assert [s["barcode"] for s in sim_server.world.scans] == ["UNKNOWN-000001"]


def test_upload_once_exits_1_when_the_server_is_down(gate_env, capsys, monkeypatch):
    monkeypatch.setenv("GATE_API_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("GATE_API_TOKEN", "sim-token")
    run(capsys, "check", make_ticket(1).barcode)
    code, _, err = run(capsys, "upload", "--once")
    assert code == 1 and "error:" in err


@pytest.mark.slow
def test_bench_validate_reports_figures_and_goals(capsys, tmp_path):
    code, out, _ = run(capsys, "bench", "validate", "--tickets", "500", "--scans", "50",
                       "--dir", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 0
    assert [g["goal"] for g in doc["goals"]] == [
        "decision only p99", "decision + durable journal p99 / floor p99",
        "(c) p99 under sync / idle p99", "(c) max under sync",
        "(c) checks refused under sync"]
    assert doc["decide"]["p99_ms"] > 0 and doc["floor"]["p99_ms"] > 0
    # (c) ran the real Syncer, in gate run's child process and then in a thread: each a
    # delta that brought the simulator's changes into the store.
    for key in ("sync", "sync_thread"):
        assert doc[key]["mode"] == "delta" and 0 < doc[key]["delta_upserted"] <= 500


@pytest.mark.slow
def test_bench_validate_prints_figure_c_under_a_sync(capsys, tmp_path):
    code, out, _ = run(capsys, "bench", "validate", "--tickets", "3000", "--scans", "50",
                       "--delta", "2000", "--dir", str(tmp_path))
    assert code == 0
    assert "(c) under a 2000-change sync, gate run's sync process" in out
    assert "(c) under a 2000-change sync, a sync thread" in out and "0 refused" in out
    assert "(c) p99 under sync / idle p99" in out and "(c) max under sync" in out


def test_bench_upload_drains_everything_to_the_simulator(capsys):
    code, out, _ = run(capsys, "bench", "upload", "--scans", "120", "--batch-size", "50",
                       "--json")
    doc = json.loads(out)
    assert (code, doc["sent"], doc["on_server"], doc["requests"]) == (0, 120, 120, 3)


def test_dry_run_check_leaves_journal_and_queue_unchanged_and_the_ticket_unused(
        gate_env, capsys):
    """An information scan before doors open: decided and printed, nothing recorded."""
    run(capsys, "check", "UNKNOWN-000001")  # one real scan, so "unchanged" is not "empty"
    _, before, _ = run(capsys, "journal", "--json")
    _, queued_before, _ = run(capsys, "status", "--json")
    first = run(capsys, "check", make_ticket(1).barcode, "--dry-run", "--json")
    second = run(capsys, "check", make_ticket(1).barcode, "--dry-run")
    _, after, _ = run(capsys, "journal", "--json")
    _, queued_after, _ = run(capsys, "status", "--json")
    assert first[0] == 0 and json.loads(first[1])["reason"] == "GRANTED"
    assert json.loads(first[1])["dry_run"] is True and json.loads(first[1])["scan_id"] == ""
    assert second[0] == 0 and second[1].startswith("GRANTED") and "dry run" in second[1]
    assert after == before and len(before.splitlines()) == 1
    assert json.loads(queued_after)["queue"] == json.loads(queued_before)["queue"]
    # The real scan after the dry runs is the ticket's first: still GRANTED.
    assert run(capsys, "check", make_ticket(1).barcode)[0] == 0
