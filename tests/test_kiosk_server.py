"""The kiosk's HTTP routes over real loopback HTTP: metrics that match the journal, the
status document, health, and the login that guards state changes beyond loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kits import loopback
from kits.kiosk import KioskGate, free_port, quick_pin_file
from kits.waiting import WAIT, wait_for
from prometheus_client.parser import text_string_to_metric_families

from scanner.decide.model import Direction
from scanner.kiosk import KioskServer, WebOptions
from scanner.kiosk.auth import MAX_FAILURES, MIN_PIN_LENGTH, PinHash, write_pin_file
from scanner.kiosk.events import END, Client
from scanner.sim import SimServer
from scanner.status import gather

PIN = "4711"


@pytest.fixture
def wide(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    """A kiosk bound beyond loopback, with a PIN set."""
    pin_file = tmp_path / "kiosk.pin"
    quick_pin_file(pin_file, PIN)
    gate = KioskGate(tmp_path, sim_server, WebOptions(host="0.0.0.0", port=free_port(),
                                                      pin_file=str(pin_file)))
    yield gate
    gate.close()


def post(client: httpx.Client, path: str, body: dict[str, str]) -> httpx.Response:
    return client.post(path, json=body)


def decisions(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "gate_decisions":
            for sample in family.samples:
                if sample.name == "gate_decisions_total":
                    out[(sample.labels["result"], sample.labels["reason"])] = sample.value
    return out


def test_metrics_parse_and_their_decision_counters_match_the_journal(kg: KioskGate) -> None:
    for barcode in [*kg.valid_barcodes(3), "NOSUCHCODE1", "NOSUCHCODE2"]:
        kg.read(barcode)
    kg.read(kg.valid_barcodes(1)[0])  # again: already inside
    expected: dict[tuple[str, str], float] = {}
    for row in kg.gate.journal.entries():
        key = (row["result"], row["reason"])
        expected[key] = expected.get(key, 0) + 1
    text = loopback.get(kg.url + "/metrics").text
    assert decisions(text) == expected
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"gate_decision_latency_seconds", "gate_read_to_relay_seconds",
            "gate_tickets_in_store", "gate_upload_queue_depth", "gate_watchdog_ok"} <= names


def test_api_status_is_the_gate_status_document(kg: KioskGate) -> None:
    kg.read(kg.valid_barcodes(1)[0])
    served, local = loopback.get(kg.url + "/api/status").json(), gather(kg.gate)
    # the clock's readings move between the two reads; its verdict does not
    assert served.pop("clock")["state"] == local.pop("clock")["state"]
    assert served == local


def test_healthz_is_503_with_the_reason_when_the_act_stage_stopped(kg: KioskGate) -> None:
    assert loopback.get(kg.url + "/healthz").status_code == 200
    kg.stage.stop(5)
    reply = loopback.get(kg.url + "/healthz")
    assert reply.status_code == 503
    assert "act: not running" in reply.json()["reasons"]


def test_manual_entry_beyond_loopback_is_refused_without_a_session(wide: KioskGate) -> None:
    with loopback.client(base_url=wide.url) as client:
        reply = post(client, "/api/scan", {"barcode": wide.valid_barcodes(1)[0]})
    assert reply.status_code == 401
    assert list(wide.gate.journal.entries()) == []


def test_manual_entry_beyond_loopback_works_after_the_pin(wide: KioskGate) -> None:
    barcode = wide.valid_barcodes(1)[0]
    with loopback.client(base_url=wide.url) as client:
        login = post(client, "/api/login", {"pin": PIN})
        assert login.status_code == 200
        assert "HttpOnly" in login.headers["set-cookie"]
        assert "SameSite=Strict" in login.headers["set-cookie"]
        reply = post(client, "/api/scan", {"barcode": barcode})
    assert reply.status_code == 200 and reply.json()["granted"] is True
    assert [row["barcode"] for row in wide.gate.journal.entries()] == [barcode]


def test_repeated_wrong_pins_lock_the_address_out_even_for_the_right_one(
        wide: KioskGate) -> None:
    with loopback.client(base_url=wide.url) as client:
        codes = [post(client, "/api/login", {"pin": "0000"}).status_code
                 for _ in range(MAX_FAILURES)]
        locked = post(client, "/api/login", {"pin": PIN})
    assert codes == [401] * MAX_FAILURES
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0


def test_a_cross_origin_post_is_refused(kg: KioskGate) -> None:
    reply = loopback.post(kg.url + "/api/scan", json={"barcode": "ABCDEFGH12"},
                       headers={"Origin": "http://evil.example"})
    assert reply.status_code == 403
    assert list(kg.gate.journal.entries()) == []


def test_a_form_post_is_refused(kg: KioskGate) -> None:
    reply = loopback.post(kg.url + "/api/scan", data={"barcode": "ABCDEFGH12"})
    assert reply.status_code == 415


def test_status_can_be_closed_beyond_loopback(tmp_path: Path, sim_server: SimServer) -> None:
    gate = KioskGate(tmp_path, sim_server, WebOptions(host="0.0.0.0", port=free_port(),
                                                      pin_file=str(tmp_path / "none"),
                                                      status_open=False))
    try:
        assert loopback.get(gate.url + "/api/status").status_code == 401
        assert loopback.get(gate.url + "/healthz").status_code == 200
    finally:
        gate.close()


def steward(kg: KioskGate, tmp_path: Path) -> httpx.Client:
    """A client logged in with the steward's PIN on a loopback kiosk (the PIN set now)."""
    quick_pin_file(tmp_path / "kiosk.pin", PIN)
    kg.restart_kiosk()  # the PIN is read at start
    client = loopback.client(base_url=kg.url, timeout=5)
    assert post(client, "/api/login", {"pin": PIN}).status_code == 200
    return client


def test_annul_marks_a_grant_not_passed(kg: KioskGate, tmp_path: Path) -> None:
    with contextlib.closing(steward(kg, tmp_path)) as client:
        result = kg.read(kg.valid_barcodes(1)[0])
        wait_for(lambda: kg.kiosk.events.annullable(result.scan_id),
                 "the grant to reach the kiosk")
        reply = post(client, "/api/annul", {"scan_id": result.scan_id})
        assert reply.status_code == 200
        row = next(e for e in kg.gate.journal.entries() if e["scan_id"] == result.scan_id)
        assert row["passed"] is False
        again = post(client, "/api/annul", {"scan_id": result.scan_id})
        assert again.status_code == 409
        [listed] = [m for m in client.get("/api/recent").json()
                    if m["scan_id"] == result.scan_id]
        assert listed["annulled"] is True


def test_annul_and_direction_on_loopback_need_the_stewards_pin(kg: KioskGate) -> None:
    """Whoever touches the gate's own screen cannot annul a grant or turn the gate round."""
    result = kg.read(kg.valid_barcodes(1)[0])
    wait_for(lambda: kg.kiosk.events.annullable(result.scan_id), "the grant to reach the kiosk")
    assert loopback.post(kg.url + "/api/annul", json={"scan_id": result.scan_id}).status_code == 401
    assert loopback.post(kg.url + "/api/direction", json={"direction": "OUT"}).status_code == 401
    assert kg.kiosk.direction.value == "IN"
    # No PIN set on this gate: the login says so rather than "wrong PIN".
    assert loopback.post(kg.url + "/api/login", json={"pin": PIN}).status_code == 403
    assert next(e for e in kg.gate.journal.entries()
                if e["scan_id"] == result.scan_id)["passed"] is not False


def test_recent_lists_this_gates_last_twenty_decisions_newest_first(kg: KioskGate) -> None:
    codes = kg.valid_barcodes(22)
    scans = [kg.read(code).scan_id for code in codes]
    wait_for(lambda: len(kg.kiosk.events.recent()) == 20
             and kg.kiosk.events.recent()[0]["scan_id"] == scans[-1], "the last decision")
    listed = loopback.get(kg.url + "/api/recent").json()
    assert [m["scan_id"] for m in listed] == scans[::-1][:20]
    assert all(m["granted"] and m["word_key"] == "word.valid" for m in listed)


def test_recent_decisions_survive_a_restart_newest_first(
        tmp_path: Path, sim_server: SimServer) -> None:
    """The list is read back from the journal: the gate built again on the same files
    lists its last twenty decisions, newest first, with the holders' names, a grant that
    was annulled as annulled, and a denial as one."""
    names = {doc["barcode"]: doc["name"] for event_id in sim_server.world.event_ids
             for doc in sim_server.world.current_tickets(event_id) if doc.get("name")}
    with KioskGate(tmp_path, sim_server) as first:
        codes = first.valid_barcodes(21)
        scans = [(first.read(code).scan_id, code) for code in codes]
        first.gate.journal.mark_passed(scans[-1][0], False)  # what an annul writes
        scans.append((first.read("NOSUCHCODE-RESTART").scan_id, None))
    with KioskGate(tmp_path, sim_server) as again:
        listed = loopback.get(again.url + "/api/recent").json()
        assert [m["scan_id"] for m in listed] == [scan_id for scan_id, _ in scans[::-1][:20]]
        denial, annulled, *granted = listed
        assert not denial["granted"] and denial["word_key"] == "word.denied"
        assert denial["reason"] == "UNKNOWN_BARCODE" and denial["holder"] is None
        assert annulled["granted"] and annulled["annulled"] and annulled["passed"] is False
        assert annulled["holder"] == names[codes[-1]]
        assert [m["holder"] for m in granted] == [names[code] for _, code in scans[-3::-1][:18]]
        assert all(m["word_key"] == "word.valid" and not m["annulled"] for m in granted)
        # The time listed is the scan's (journal order is the order: a corrected clock
        # may step back a little between two scans).
        assert all(abs(m["sent_at"] / 1000 - time.time()) < 600 for m in listed)
        # A decision after the restart goes on top, once.
        fresh = again.read(codes[0]).scan_id
        wait_for(lambda: again.kiosk.events.recent()[0]["scan_id"] == fresh, "the new decision")
        now = [m["scan_id"] for m in again.kiosk.events.recent()]
        assert now == [fresh, *[m["scan_id"] for m in listed[:19]]]


def test_the_page_and_its_words_follow_accept_language(kg: KioskGate) -> None:
    page = loopback.get(kg.url + "/", headers={"Accept-Language": "de-CH,de;q=0.9,en;q=0.5"})
    assert '<html lang="de">' in page.text
    words = loopback.get(kg.url + "/api/i18n", headers={"Accept-Language": "fr;q=0.4, nl"}).json()
    assert words["lang"] == "nl" and words["messages"]["word.valid"] == "GELDIG"
    fallback = loopback.get(kg.url + "/api/i18n", headers={"Accept-Language": "ja"}).json()
    assert fallback["lang"] == "en" and fallback["messages"]["word.ready"] == "READY"


def test_web_language_forces_one_language_on_every_browser(
        tmp_path: Path, sim_server: SimServer) -> None:
    with KioskGate(tmp_path, sim_server, WebOptions(port=free_port(), language="it",
                                                    pin_file=str(tmp_path / "p"))) as gate:
        words = loopback.get(gate.url + "/api/i18n", headers={"Accept-Language": "de"}).json()
        assert words["lang"] == "it" and words["messages"]["word.denied"] == "NEGATO"


@pytest.mark.slow
def test_set_pin_writes_a_hash_only_its_owner_can_read(tmp_path: Path) -> None:
    pin_file = tmp_path / "kiosk.pin"
    result = subprocess.run([sys.executable, "-m", "scanner.cli.main", "kiosk", "set-pin",
                             "--pin-file", str(pin_file), "--stdin"], input="2468\n",
                            text=True, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(pin_file).st_mode) == 0o600
    assert "2468" not in pin_file.read_text()
    stored = PinHash.load(pin_file)
    assert stored is not None and stored.matches("2468") and not stored.matches("2469")


@pytest.mark.parametrize("stdin", [{"LC_ALL": "C.UTF-8"}, {"PYTHONIOENCODING": "utf-8"}],
                         ids=["lenient", "strict"])
def test_set_pin_refuses_bytes_that_are_not_utf8_in_one_line(
        tmp_path: Path, stdin: dict[str, str]) -> None:
    """Whatever the locale makes of standard input, and with the other role's PIN set (the
    new PIN is compared with it first)."""
    config = tmp_path / "gate.toml"
    config.write_text(f'[web]\npin_file = "{tmp_path / "kiosk.pin"}"\n'
                      f'supervisor_pin_file = "{tmp_path / "supervisor.pin"}"\n')
    quick_pin_file(tmp_path / "supervisor.pin", "97531")
    result = subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                             "kiosk", "set-pin", "--stdin"], input=b"\xff\xfe2468\n",
                            capture_output=True, timeout=60, check=False,
                            env={**os.environ, **stdin})
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1] \
        == f"Error: a PIN needs at least {MIN_PIN_LENGTH} printable characters"
    assert b"Traceback" not in result.stderr
    assert not (tmp_path / "kiosk.pin").exists()


def test_set_pin_from_stdin_reads_a_bounded_line(tmp_path: Path) -> None:
    """Read whole, stdin from /dev/zero grew without end (a MemoryError traceback, if the
    machine lasted); a PIN past the bound is refused and nothing is written."""
    pin_file = tmp_path / "kiosk.pin"
    result = subprocess.run([sys.executable, "-m", "scanner.cli.main", "kiosk", "set-pin",
                             "--pin-file", str(pin_file), "--stdin"], input="7" * 5000,
                            text=True, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "Error: a PIN is at most 1024 characters"
    assert not pin_file.exists()


def test_a_pin_file_that_is_a_device_or_pipe_is_refused_and_left_there(tmp_path: Path) -> None:
    """The rename used to put the hash in its place: as root, ``--pin-file /dev/null``
    replaced /dev/null itself (a pipe stands in for it here)."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match="not a regular file"):
        write_pin_file(pipe, "2468", n=2)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_manual_scan_logs_its_decision_line(kg: KioskGate,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The README's one line per decision holds for the kiosk's manual entry too."""
    import logging
    import re

    caplog.set_level(logging.INFO, logger="scanner.decision")
    barcode = kg.valid_barcodes(1)[0]
    reply = loopback.post(kg.url + "/api/scan", json={"barcode": barcode}, timeout=5)
    assert reply.status_code == 200 and reply.json()["granted"] is True
    [line] = [r.getMessage() for r in caplog.records if r.name == "scanner.decision"]
    scan_id = reply.json()["scan_id"]
    assert re.fullmatch(rf"decision {scan_id} GRANTED IN {re.escape(barcode)} kiosk: .+ "
                        r"\(\d+\.\d ms\)", line), line


def test_a_decision_after_the_stream_opened_is_on_it_however_slow_the_state(
        kg: KioskGate) -> None:
    """A page sees its stream open, and the steward scans at once: a gate just started
    builds its first state slowly (a cold store, a sync at work), and that decision must
    still reach the page."""
    first = threading.Event()

    def slow_status() -> dict[str, Any]:
        if not first.is_set():
            first.set()
            time.sleep(1.5)
        return kg.kiosk.parts.status()

    kg.kiosk.stop()  # one broadcaster drains the act stage's kiosk queue
    slow = KioskServer(WebOptions(port=free_port()),
                       dataclasses.replace(kg.kiosk.parts, status=slow_status)).start()
    try:
        with loopback.stream("GET", slow.url + "/events", timeout=10) as stream:
            result = kg.read(kg.valid_barcodes(1)[0])  # the page saw "open": it may scan
            deadline = time.monotonic() + 5
            seen = b""
            for chunk in stream.iter_bytes():
                seen += chunk
                if result.scan_id.encode() in seen or time.monotonic() > deadline:
                    break
        assert b"event: decision" in seen and result.scan_id.encode() in seen
    finally:
        slow.stop()


@contextlib.contextmanager
def counting_reads(kg: KioskGate) -> Iterator[tuple[KioskServer, list[float]]]:
    """``kg``'s kiosk again, on a port of its own, and when it read the status, each time."""
    reads: list[float] = []

    def counted() -> dict[str, Any]:
        reads.append(time.monotonic())
        return kg.kiosk.parts.status()

    kg.kiosk.stop()
    polled = KioskServer(WebOptions(port=free_port()),
                         dataclasses.replace(kg.kiosk.parts, status=counted)).start()
    try:
        yield polled, reads
    finally:
        polled.stop()


def test_a_burst_of_status_requests_reads_the_status_once(kg: KioskGate) -> None:
    """A monitoring system polling /api/status 20 times a second costs the gate one status
    read a second, not twenty."""
    with counting_reads(kg) as (polled, reads), \
            loopback.client(base_url=polled.url, timeout=5) as client:
        answers = [client.get("/api/status") for _ in range(20)]
        assert all(a.status_code == 200 for a in answers)
        assert {a.json()["tickets"] for a in answers} == {kg.gate.store.count()}
        assert len(reads) <= 2  # the burst may straddle the document's second


def test_a_burst_of_metrics_scrapes_reads_the_status_once(kg: KioskGate) -> None:
    """/metrics carries the status document's gauges: a scraper polling it 20 times a
    second costs one status read a second too."""
    with counting_reads(kg) as (polled, reads), \
            loopback.client(base_url=polled.url, timeout=5) as client:
        began = time.monotonic()
        answers = [client.get("/metrics") for _ in range(20)]
        took = time.monotonic() - began
        assert all(a.status_code == 200 for a in answers)
        assert f"gate_tickets_in_store {float(kg.gate.store.count())}" in answers[-1].text
        assert len(reads) <= 2 + took  # one a second, the burst straddling seconds


def test_a_burst_of_state_requests_and_reconnects_builds_the_state_once(
        kg: KioskGate) -> None:
    """With no page listening, a client polling /api/state or opening and dropping streams
    20 times a second costs the gate one state build (a whole status read) a second; a
    direction switch still shows at once."""
    with counting_reads(kg) as (polled, reads), \
            loopback.client(base_url=polled.url, timeout=5) as client:
        began = time.monotonic()
        answers = [client.get("/api/state") for _ in range(20)]
        for _ in range(20):
            with client.stream("GET", "/events") as stream:
                assert next(stream.iter_bytes()).startswith(b"retry:")
        took = time.monotonic() - began
        assert all(a.status_code == 200 for a in answers)
        assert len(reads) <= 2 + took  # one a second, the bursts straddling seconds
        polled.set_direction(Direction.OUT)
        assert client.get("/api/state").json()["direction"] == "OUT"


def drained(client: Client) -> list[bytes]:
    frames = []
    with contextlib.suppress(queue.Empty):
        while True:
            frames.append(client.messages.get_nowait())
    return frames


def test_stopping_the_broadcaster_ends_each_open_stream_with_its_sentinel(
        kg: KioskGate) -> None:
    """A stream ends when told, not at its next poll: stop leaves END in every queue."""
    client = kg.kiosk.events.attach()
    kg.kiosk.events.stop()
    assert drained(client)[-1] == END and kg.kiosk.events.clients == 0


def test_a_detached_client_gets_the_sentinel(kg: KioskGate) -> None:
    client = kg.kiosk.events.attach()
    kg.kiosk.events.detach(client)
    assert drained(client)[-1] == END


def test_an_open_stream_ends_over_http_when_the_broadcaster_stops(kg: KioskGate) -> None:
    """The HTTP side ends the response at the sentinel, though the server still runs."""
    seen = b""
    with loopback.stream("GET", kg.url + "/events", timeout=WAIT) as stream:
        chunks = stream.iter_bytes()
        while b"event: state" not in seen:
            seen += next(chunks)
        kg.kiosk.events.stop()
        seen += b"".join(chunks)  # a read timeout here: the stream never ended
    assert kg.kiosk.serving is False and b"event: state" in seen
