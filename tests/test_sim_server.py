"""The running simulator: control routes, page-time faults, churn, stop, ``gate sim``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from kits import loopback
from kits.sim import SIM_TOKEN

from scanner.config import Secret
from scanner.errors import BadRequest, ServerUnavailable
from scanner.sim import SimServer, World
from scanner.sim.generate import iso_ms
from scanner.vivenu.client import VivenuClient


@pytest.fixture
def control(sim_server: SimServer) -> Iterator[httpx.Client]:
    with loopback.client(base_url=sim_server.url + "/_sim", headers={"token": SIM_TOKEN}) as c:
        yield c


def test_control_routes_need_the_token(sim_server: SimServer) -> None:
    answer = loopback.post(sim_server.url + "/_sim/faults", json={"latency_ms": 10})
    assert answer.status_code == 401
    assert sim_server.faults.settings().latency_ms == 0


def test_control_sets_faults(control: httpx.Client, sim_server: SimServer) -> None:
    answer = control.post("/faults", json={"error_rate": 0.25, "rate_limit": 2})
    assert answer.status_code == 200
    settings = sim_server.faults.settings()
    assert (settings.error_rate, settings.rate_limit) == (0.25, 2)
    assert control.get("/faults").json()["rate_limit"] == 2


def test_control_refuses_bad_faults(control: httpx.Client, sim_server: SimServer) -> None:
    answer = control.post("/faults", json={"error_rate": 3})
    assert answer.status_code == 400 and "error_rate" in answer.json()["message"]
    assert sim_server.faults.settings().error_rate == 0


def test_control_mutates_by_kind(control: httpx.Client, sim_world: World) -> None:
    event_id = sim_world.event_ids[1]
    answer = control.post("/mutate", json={"n": 5, "kind": "cancel", "event_id": event_id})
    changed = answer.json()["changed"]
    assert len(changed) == 5 and {c["kind"] for c in changed} == {"cancel"}
    assert all(sim_world.find(c["barcode"], event_id)["status"] == "INVALID" for c in changed)


def test_control_lists_current_tickets_as_ndjson(control: httpx.Client,
                                                 sim_world: World) -> None:
    sim_world.mutate(10)
    event_id = sim_world.event_ids[0]
    answer = control.get(f"/tickets/{event_id}")
    assert answer.headers["content-type"] == "application/x-ndjson"
    docs = [orjson.loads(line) for line in answer.content.splitlines()]
    assert docs == list(sim_world.current_tickets(event_id))


def test_control_poison_makes_uploads_fail(control: httpx.Client, api_client: VivenuClient,
                                           sim_world: World) -> None:
    control.post("/poison", json={"barcodes": ["POISONED99"]})
    scan = {"barcode": "POISONED99", "scanned_at": "2026-05-01T18:00:00Z", "type": "OK",
            "direction": "IN"}
    with pytest.raises(BadRequest, match="refused"):
        api_client.post_scans(sim_world.event_ids[0], [scan])
    assert control.get("/scans").json() == []


def test_control_shows_uploaded_scans(control: httpx.Client, api_client: VivenuClient,
                                      sim_world: World) -> None:
    scan = {"barcode": "ABCDEFGH12", "scanned_at": "2026-05-01T18:00:00Z", "type": "OK",
            "direction": "OUT"}
    api_client.post_scans(sim_world.event_ids[1], [scan])
    assert control.get("/scans").json() == [{**scan, "eventId": sim_world.event_ids[1]}]


def test_control_changes_device_settings(control: httpx.Client,
                                         api_client: VivenuClient) -> None:
    answer = control.post("/device", json={"multi_checkin": True, "ticket_sync_interval": 60})
    assert answer.status_code == 200
    settings = api_client.me()["deviceSettings"]
    assert settings["scanConfig"]["enableMultiCheckin"] is True
    assert settings["ticketSyncInterval"] == 60


def test_control_refuses_impossible_device_settings(control: httpx.Client) -> None:
    answer = control.post("/device", json={"checkin": False, "checkout": False})
    assert answer.status_code == 400 and "checkin" in answer.json()["message"]


def test_mutate_per_page_changes_tickets_after_each_page(api_client: VivenuClient,
                                                         sim_server: SimServer) -> None:
    world = sim_server.world
    event_id = world.event_ids[0]
    before = {d["_id"]: d for d in world.current_tickets(event_id)}
    sim_server.faults.update(mutate_per_page=3)
    page = api_client.ticket_page(event_id, top=10, skip=0)
    assert [t.id for t in page.tickets] == list(before)[:10]
    after = {d["_id"]: d for d in world.current_tickets(event_id)}
    affected = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
    # Three changes; one ticket may be hit twice.
    assert 1 <= len(affected) <= 3


def test_churn_sells_and_cancels_in_the_background(sim_server: SimServer) -> None:
    world = sim_server.world
    started = iso_ms(int(world.now() * 1000))
    sim_server.faults.update(churn=100)
    sold: list[dict] = []
    cancelled: list[dict] = []
    for _ in range(200):  # up to 10 s on a loaded machine; 100/s needs a fraction of that
        docs = [d for e in world.event_ids for d in world.current_tickets(e)]
        sold = [d for d in docs if d["createdAt"] >= started]
        cancelled = [d for d in docs if d["createdAt"] < started <= d["updatedAt"]]
        if sold and cancelled:
            break
        time.sleep(0.05)
    sim_server.faults.update(churn=0)
    assert sold and all(d["status"] == "VALID" for d in sold)
    assert cancelled and all(d["status"] == "INVALID" for d in cancelled)


def test_stop_cuts_keep_alive_connections(sim_world: World) -> None:
    server = SimServer(sim_world).start()
    with VivenuClient(server.url, Secret("sim-token"), retries=0) as client:
        client.seller()
        server.stop()
        server.stop()  # idempotent
        with pytest.raises(ServerUnavailable):
            client.seller()


# -- gate sim ------------------------------------------------------------------------------

def start_gate_sim(*args: str) -> tuple[subprocess.Popen[str], str]:
    gate = Path(sys.executable).with_name("gate")
    process = subprocess.Popen([str(gate), "sim", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline()


def test_gate_sim_serves_until_sigterm(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-777\n")
    os.chmod(token_file, 0o600)
    process, line = start_gate_sim("--tickets", "20", "--events", "3", "--seed", "4",
                                   "--token-file", str(token_file))
    try:
        url = re.search(r"http://\S+", line)
        assert url is not None, line
        assert "file-token-777" not in line
        answer = loopback.get(url.group(0) + "/api/accessusers/events",
                           headers={"token": "file-token-777"})
        assert [e["_id"] for e in answer.json()] == World(seed=4, events=3).event_ids
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_gate_sim_refuses_an_empty_token_file(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("  \n")
    os.chmod(empty, 0o600)
    process, _ = start_gate_sim("--token-file", str(empty))
    _, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "is empty" in err
