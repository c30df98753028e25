"""VivenuClient against the simulator over real loopback HTTP."""

from __future__ import annotations

import logging
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from kits.sim import SIM_TOKEN, TEST_BACKOFF

from scanner.config import ApiConfig, Secret
from scanner.errors import (
    ApiError,
    AuthRefused,
    BadRequest,
    ConfigError,
    InsecureUrl,
    NotFound,
    ProtocolError,
    ServerUnavailable,
)
from scanner.sim import SimServer, World
from scanner.tickets import Ticket
from scanner.vivenu.client import VivenuClient
from scanner.vivenu.retry import MAX_RETRY_AFTER, retry_after_seconds


def scan(barcode: str, **extra: str) -> dict[str, str]:
    return {"barcode": barcode, "scanned_at": "2026-05-01T18:00:00.000Z", "type": "OK",
            "direction": "IN", **extra}


class SleepLog(list[float]):
    """Records sleeps instead of sleeping: retry waits are asserted, not waited for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


@pytest.fixture
def fast_client(sim_server: SimServer, sleeps: SleepLog) -> Iterator[VivenuClient]:
    with VivenuClient(sim_server.url, Secret(SIM_TOKEN), retries=3, sleep=sleeps) as client:
        yield client


# -- endpoints -----------------------------------------------------------------------------

def test_events_lists_the_worlds_events(api_client: VivenuClient, sim_world: World) -> None:
    assert api_client.events() == sim_world.events()


def test_events_sends_include_root_events(api_client: VivenuClient,
                                          sim_server: SimServer) -> None:
    api_client.events(include_root_events=False)
    api_client.events()
    assert [r.query for r in sim_server.requests] == ["includeRootEvents=false", ""]


def test_me_returns_the_device_settings(api_client: VivenuClient, sim_world: World) -> None:
    assert api_client.me() == sim_world.me()


def test_seller_returns_the_seller_id(api_client: VivenuClient, sim_world: World) -> None:
    assert api_client.seller() == {"sellerId": sim_world.seller_id}


def test_ticket_page_parses_every_doc(api_client: VivenuClient, sim_world: World) -> None:
    event_id = sim_world.event_ids[0]
    page = api_client.ticket_page(event_id, top=50, skip=100)
    expected = list(sim_world.current_tickets(event_id))[100:150]
    assert page.total == 300
    assert page.tickets == [Ticket.from_api(doc) for doc in expected]


def test_ticket_page_passes_the_window(api_client: VivenuClient, sim_world: World) -> None:
    event_id = sim_world.event_ids[0]
    docs = list(sim_world.current_tickets(event_id))
    page = api_client.ticket_page(event_id, top=1000, skip=0, from_=docs[10]["updatedAt"],
                                  until=docs[20]["updatedAt"])
    assert [t.id for t in page.tickets] == [d["_id"] for d in docs[10:20]]
    assert page.total == 10


def test_a_page_downloaded_ahead_is_served_without_a_second_request(
        api_client: VivenuClient, sim_server: SimServer, sim_world: World) -> None:
    event_id = sim_world.event_ids[0]
    api_client.ticket_page(event_id, top=50, skip=0, ahead=40)
    page = api_client.ticket_page(event_id, top=50, skip=40)
    assert [r.query for r in sim_server.requests] == ["top=50&skip=0", "top=50&skip=40"]
    expected = list(sim_world.current_tickets(event_id))[40:90]
    assert page.tickets == [Ticket.from_api(doc) for doc in expected]


def test_a_page_downloaded_ahead_but_asked_elsewhere_is_fetched_again(
        api_client: VivenuClient, sim_server: SimServer, sim_world: World) -> None:
    event_id = sim_world.event_ids[0]
    api_client.ticket_page(event_id, top=50, skip=0, ahead=40)
    page = api_client.ticket_page(event_id, top=50, skip=30)  # the list shifted
    assert [r.query for r in sim_server.requests][-1] == "top=50&skip=30"
    expected = list(sim_world.current_tickets(event_id))[30:80]
    assert [t.id for t in page.tickets] == [d["_id"] for d in expected]


def test_no_page_is_downloaded_ahead_past_the_listing(
        api_client: VivenuClient, sim_server: SimServer, sim_world: World) -> None:
    api_client.ticket_page(sim_world.event_ids[0], top=50, skip=280, ahead=300)
    api_client.close()
    assert [r.query for r in sim_server.requests] == ["top=50&skip=280"]


def test_a_fault_of_a_download_ahead_surfaces_when_its_page_is_asked() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["skip"] == "40":  # the page downloaded ahead is gone
            return httpx.Response(404)
        return httpx.Response(200, json={"docs": [], "total": 100})

    with VivenuClient("https://vivenu.example", Secret(SIM_TOKEN), retries=0,
                      transport=httpx.MockTransport(answer)) as client:
        client.ticket_page("ev", top=50, skip=0, ahead=40)
        with pytest.raises(NotFound):
            client.ticket_page("ev", top=50, skip=40)


def test_ticket_finds_a_barcode(api_client: VivenuClient, sim_world: World) -> None:
    doc = next(sim_world.current_tickets(sim_world.event_ids[1]))
    assert api_client.ticket(doc["barcode"]) == Ticket.from_api(doc)


def test_ticket_in_another_event_is_not_found(api_client: VivenuClient,
                                              sim_world: World) -> None:
    doc = next(sim_world.current_tickets(sim_world.event_ids[1]))
    with pytest.raises(NotFound):
        api_client.ticket(doc["barcode"], sim_world.event_ids[0])


def test_unknown_barcode_is_not_found(api_client: VivenuClient) -> None:
    with pytest.raises(NotFound) as caught:
        api_client.ticket("NOSUCHCODE1234")
    assert caught.value.status == 404


ODD_BARCODES = ["AB/CD/1234", "with space 42", "hash#tag#99", "ünïcødé-✓-2030",
                "q?x=1&y=2%41", "dots/../../me"]


@pytest.mark.parametrize("barcode", ODD_BARCODES)
def test_odd_barcodes_are_quoted_into_one_path_segment(api_client: VivenuClient,
                                                       sim_server: SimServer,
                                                       sim_world: World, barcode: str) -> None:
    sim_world.sell(sim_world.event_ids[0], 1, barcodes=[barcode])
    assert api_client.ticket(barcode).barcode == barcode
    path = sim_server.requests[-1].path
    assert path.startswith("/api/accessusers/tickets/") and path.count("/") == 4


def test_scan_ticket_grants_a_valid_ticket_once(api_client: VivenuClient,
                                                sim_world: World) -> None:
    [doc] = sim_world.sell(sim_world.event_ids[0], 1)
    first = api_client.scan_ticket(doc["barcode"])
    second = api_client.scan_ticket(doc["barcode"])
    assert (first["access"], second["access"]) == ("GRANTED", "DENIED")
    assert first["ticket"]["_id"] == doc["_id"]
    assert [d["access"] for d in sim_world.scan_decisions] == ["GRANTED", "DENIED"]


def test_post_scans_is_recorded_with_its_event(api_client: VivenuClient,
                                               sim_world: World) -> None:
    event_id = sim_world.event_ids[1]
    answer = api_client.post_scans(event_id, [scan("ABCDEFGH12"), scan("ZYXWVUTS98")])
    assert answer == {"status": "OK"}
    assert [(s["barcode"], s["eventId"]) for s in sim_world.scans] == [
        ("ABCDEFGH12", event_id), ("ZYXWVUTS98", event_id)]


def test_invalid_scan_is_bad_request_naming_the_field(api_client: VivenuClient,
                                                      sim_world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        api_client.post_scans(sim_world.event_ids[0], [scan("ABCDEFGH12"), scan("short")])
    assert "[1].barcode" in caught.value.body
    assert sim_world.scans == []


def test_poisoned_barcode_refuses_the_batch(api_client: VivenuClient,
                                            sim_world: World) -> None:
    sim_world.poison.add("POISONED99")
    with pytest.raises(BadRequest) as caught:
        api_client.post_scans(sim_world.event_ids[0], [scan("ABCDEFGH12"), scan("POISONED99")])
    assert caught.value.status == 400
    assert '"index":1' in caught.value.body


# -- URLs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://vivenu.com", "http://10.0.0.5:8080",
                                 "ftp://vivenu.com", "vivenu.com"])
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(InsecureUrl, match="https"):
        VivenuClient(url, Secret(SIM_TOKEN))


@pytest.fixture
def self_signed_https(tmp_path: Path) -> Iterator[str]:
    """A real TLS server on loopback whose certificate no CA signed."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"deviceSettings": {}}')

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_https_still_verifies_the_certificate_where_loopback_http_loads_no_ca_bundle(
        self_signed_https: str) -> None:
    # Loopback http skips loading CA certificates; https, to loopback too, must not.
    with VivenuClient(self_signed_https, Secret(SIM_TOKEN), retries=0) as client, \
            pytest.raises(ServerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client.me()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://127.3.4.5", "http://[::1]:9",
                                 "http://localhost:8765", "https://vivenu.com/"])
def test_loopback_http_and_any_https_are_accepted(url: str) -> None:
    with VivenuClient(url, Secret(SIM_TOKEN)) as client:
        assert repr(client) == f"VivenuClient({url.rstrip('/')!r})"


def test_from_config_uses_the_config_url_and_token(sim_server: SimServer) -> None:
    config = ApiConfig(url=sim_server.url, token=Secret(SIM_TOKEN), retries=0)
    with VivenuClient.from_config(config) as client:
        assert client.seller()["sellerId"] == sim_server.world.seller_id


# -- retries -------------------------------------------------------------------------------

def test_429_waits_as_long_as_retry_after_says(fast_client: VivenuClient,
                                               sim_server: SimServer, sleeps: SleepLog) -> None:
    sim_server.faults.update(rate_limit=2, retry_after=7)
    assert fast_client.seller()["sellerId"] == sim_server.world.seller_id
    assert sleeps == [7, 7]
    assert [r.status for r in sim_server.requests] == [429, 429, 200]


def test_5xx_is_retried_until_it_succeeds(fast_client: VivenuClient,
                                          sim_server: SimServer) -> None:
    sim_server.faults.update(fail_next=2)
    assert fast_client.events() == sim_server.world.events()
    statuses = [r.status for r in sim_server.requests]
    assert statuses[-1] == 200 and all(s in (500, 503) for s in statuses[:-1])
    assert len(statuses) == 3


def test_5xx_beyond_the_retries_is_server_unavailable(fast_client: VivenuClient,
                                                      sim_server: SimServer) -> None:
    sim_server.faults.update(fail_next=10)
    with pytest.raises(ServerUnavailable, match="after 4 attempt"):
        fast_client.me()
    assert len(sim_server.requests) == 4


def test_dropped_connection_is_retried(fast_client: VivenuClient,
                                       sim_server: SimServer) -> None:
    sim_server.faults.update(drop_next=2)
    assert fast_client.seller()["sellerId"] == sim_server.world.seller_id
    assert [r.status for r in sim_server.requests] == [None, None, 200]


def test_backoff_grows_between_retries(fast_client: VivenuClient, sim_server: SimServer,
                                       sleeps: SleepLog) -> None:
    sim_server.faults.update(fail_next=3)
    fast_client.seller()
    assert len(sleeps) == 3
    # Exponential with jitter: each wait at least the doubled base, at most base + jitter.
    assert all(0.5 * 2**k <= s <= 0.5 * 2**k + 0.5 for k, s in enumerate(sleeps))


def test_4xx_is_not_retried(fast_client: VivenuClient, sim_server: SimServer,
                            sim_world: World) -> None:
    with pytest.raises(BadRequest):
        fast_client.ticket_page(sim_world.event_ids[0], top=0, skip=0)
    assert len(sim_server.requests) == 1


def test_wrong_token_is_auth_refused_and_not_retried(sim_server: SimServer) -> None:
    with VivenuClient(sim_server.url, Secret("wrong")) as client, \
            pytest.raises(AuthRefused) as caught:
        client.events()
    assert caught.value.status == 401
    assert len(sim_server.requests) == 1


def test_stopped_server_is_server_unavailable(sim_world: World, sleeps: SleepLog) -> None:
    server = SimServer(sim_world).start()
    url = server.url
    server.stop()
    with VivenuClient(url, Secret(SIM_TOKEN), retries=2, sleep=sleeps) as client, \
            pytest.raises(ServerUnavailable, match="ConnectError"):
        client.events()
    assert len(sleeps) == 2


def test_retry_after_http_date_is_measured_on_the_server_clock() -> None:
    server_now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    header = format_datetime(server_now + timedelta(seconds=20), usegmt=True)
    assert retry_after_seconds(header, server_now) == 20


@pytest.mark.parametrize("header", ["\u00b2", "\u00b9\u00b2", "\u0663", "-5", "1.5e9", "x"])
def test_a_retry_after_that_is_no_number_of_ascii_digits_counts_as_absent(header: str) -> None:
    """A superscript is a digit to ``str.isdigit`` and no number to ``float``."""
    assert retry_after_seconds(header) is None


@pytest.mark.parametrize("header", ["86400", "Wed, 01 Jan 2031 00:00:00 GMT"])
def test_retry_after_is_capped(header: str) -> None:
    assert retry_after_seconds(header, datetime(2030, 1, 1, tzinfo=UTC)) == MAX_RETRY_AFTER


@pytest.mark.parametrize("header", [None, "", "soon", "-5"])
def test_unusable_retry_after_counts_as_absent(header: str | None) -> None:
    assert retry_after_seconds(header) is None


# -- malformed answers ---------------------------------------------------------------------

@pytest.mark.parametrize("variant", [0, 1, 2], ids=["doc-lacks-barcode", "truncated-json",
                                                    "docs-not-a-list"])
def test_malformed_page_is_protocol_error(api_client: VivenuClient, sim_server: SimServer,
                                          variant: int) -> None:
    # take_malformed counts down: setting K serves variant K-1 first.
    sim_server.faults.update(malformed_pages=variant + 1)
    with pytest.raises(ProtocolError):
        api_client.ticket_page(sim_server.world.event_ids[0], top=20, skip=0)


def test_page_after_a_malformed_one_is_fine(api_client: VivenuClient,
                                            sim_server: SimServer) -> None:
    sim_server.faults.update(malformed_pages=1)
    event_id = sim_server.world.event_ids[0]
    with pytest.raises(ProtocolError):
        api_client.ticket_page(event_id, top=20, skip=0)
    assert len(api_client.ticket_page(event_id, top=20, skip=0).tickets) == 20


def test_wrong_shape_is_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"sellerId": 42})

    with VivenuClient("https://vivenu.test", Secret(SIM_TOKEN),
                      transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(ProtocolError, match="sellerId"):
        client.seller()


def test_empty_200_to_post_scans_counts_as_accepted() -> None:
    with VivenuClient("https://vivenu.test", Secret(SIM_TOKEN),
                      transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        assert client.post_scans("evt-1", [scan("ABCDEFGH12")]) == {}


# -- deadline ------------------------------------------------------------------------------

@pytest.mark.xdist_group("timing")  # bounds real time: one timed test at a time
def test_ticket_deadline_bounds_a_slow_server(api_client: VivenuClient, sim_server: SimServer,
                                              sim_world: World) -> None:
    barcode = next(sim_world.current_tickets(sim_world.event_ids[0]))["barcode"]
    sim_server.faults.update(latency_ms=3000)
    started = time.monotonic()
    with pytest.raises(ServerUnavailable):
        api_client.ticket(barcode, deadline=0.3)
    # Generous margin for a loaded CI machine; the server alone would take 3 s.
    assert time.monotonic() - started < 1.5


def test_ticket_deadline_skips_a_retry_it_cannot_afford(fast_client: VivenuClient,
                                                        sim_server: SimServer,
                                                        sleeps: SleepLog) -> None:
    sim_server.faults.update(rate_limit=1, retry_after=5)
    with pytest.raises(ServerUnavailable, match="429"):
        fast_client.ticket("ABCDEFGH12", deadline=1.0)
    assert sleeps == []
    assert len(sim_server.requests) == 1


def test_ticket_deadline_allows_a_quick_retry(fast_client: VivenuClient,
                                              sim_server: SimServer, sim_world: World) -> None:
    doc = next(sim_world.current_tickets(sim_world.event_ids[0]))
    sim_server.faults.update(rate_limit=1, retry_after=0)
    assert fast_client.ticket(doc["barcode"], deadline=2.0).id == doc["_id"]


# -- the token stays secret ----------------------------------------------------------------

def test_token_never_in_logs_reprs_or_errors(sim_world: World,
                                             caplog: pytest.LogCaptureFixture) -> None:
    token = "tok-Very-Secret-31337"
    caplog.set_level(logging.DEBUG)
    errors: list[ApiError] = []
    with SimServer(sim_world, token=token) as server, \
            VivenuClient(server.url, Secret(token), retries=1, backoff=TEST_BACKOFF) as client:
        client.events()
        client.ticket_page(sim_world.event_ids[0], top=5, skip=0)
        server.faults.update(fail_next=5)
        server.faults.update(drop_next=1)
        for call in (client.me, lambda: client.ticket("NOPE12345678"),
                     lambda: client.ticket_page(sim_world.event_ids[0], top=0, skip=0),
                     lambda: client.post_scans(sim_world.event_ids[0], [scan("x")])):
            with pytest.raises(ApiError) as caught:
                call()
            errors.append(caught.value)
        server.faults.update(fail_next=0)
        with VivenuClient(server.url, Secret(token + "-wrong")) as wrong, \
                pytest.raises(AuthRefused) as refused:
            wrong.events()
        errors.append(refused.value)
        texts = [repr(client), repr(wrong), caplog.text] + [
            f"{e!s} {e!r} {getattr(e, 'body', '')}" for e in errors]
    assert len(errors) == 5 and "retry" in caplog.text
    assert not [t for t in texts if token in t]


@pytest.mark.parametrize("token", ["tok-Secret-31\n337", "tok-Secret-31\x00337",
                                   "tok-Secret-31 337", "tok-Secret-31\u00e9337"])
def test_a_token_no_header_can_carry_is_refused_without_showing_it(sim_server: SimServer,
                                                                   token: str) -> None:
    """A client built in code (``gate setup`` with a pasted token) refuses what
    load_config refuses, in a line without the token: httpx's own error quotes the header
    value, escaped, past the scrubbing."""
    with pytest.raises(ConfigError, match="visible ASCII") as caught, \
            VivenuClient(sim_server.url, Secret(token), retries=0) as client:
        client.events()
    assert "Secret-31" not in f"{caught.value!s} {caught.value!r}"


def test_echoed_token_is_scrubbed_from_bad_request_bodies() -> None:
    token = "tok-echoed-4242"

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, text=f"bad request with token {request.headers['token']}")

    with VivenuClient("https://vivenu.test", Secret(token),
                      transport=httpx.MockTransport(echo)) as client, \
            pytest.raises(BadRequest) as caught:
        client.seller()
    assert token not in str(caught.value) and token not in caught.value.body
    assert "***" in caught.value.body


def test_terminal_escapes_in_an_error_body_are_shown_escaped() -> None:
    """A server's 4xx body reaches the operator's terminal and the journal: an ESC or BEL
    in it must not rewrite the screen or the window title."""
    def hostile(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=b"\x1b[2J\x1b]0;pwned\x07 bad \x9b1m",
                              headers={"content-type": "text/plain"})

    with VivenuClient("https://vivenu.test", Secret("tok"),
                      transport=httpx.MockTransport(hostile)) as client, \
            pytest.raises(BadRequest) as caught:
        client.seller()
    for text in (str(caught.value), caught.value.body):
        assert text.isprintable() and "\\x1b[2J\\x1b]0;pwned\\x07 bad" in text


# -- server clock and connections ----------------------------------------------------------

def test_clock_offset_is_none_before_any_answer(sim_server: SimServer) -> None:
    with VivenuClient(sim_server.url, Secret(SIM_TOKEN)) as client:
        assert client.clock_offset is None and client.last_server_date is None


def test_clock_offset_follows_the_servers_date(api_client: VivenuClient,
                                               sim_world: World) -> None:
    sim_world.skew = 3600.0
    api_client.seller()
    assert api_client.clock_offset is not None
    assert abs(api_client.clock_offset - 3600.0) <= 1.0
    assert api_client.last_server_date is not None
    assert api_client.last_server_date > datetime.now(UTC) + timedelta(minutes=59)


def test_clock_offset_is_noted_on_error_answers_too(api_client: VivenuClient,
                                                    sim_world: World) -> None:
    sim_world.skew = -7200.0
    with pytest.raises(NotFound):
        api_client.ticket("NOSUCHCODE1234")
    assert api_client.clock_offset is not None
    assert abs(api_client.clock_offset + 7200.0) <= 1.0


def test_requests_share_one_keep_alive_connection(api_client: VivenuClient,
                                                  sim_server: SimServer) -> None:
    for _ in range(5):
        api_client.seller()
    assert len(sim_server.requests) == 5
    assert sim_server.connections == 1
